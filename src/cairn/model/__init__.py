"""The backup domain: chunking, tree nodes, snapshots."""
