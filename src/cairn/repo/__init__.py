"""The repository: configuration, packs of encrypted blobs, the index, snapshots as objects."""
