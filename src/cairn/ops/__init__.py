"""Operations on repositories: backup, restore, listing, and the pieces they share."""
