"""Backing up directories into snapshots: file saver, archiver, and the snapshot writer."""
