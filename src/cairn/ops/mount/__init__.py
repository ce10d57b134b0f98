"""The repository as a read-only file system (``cairn mount``): the snapshot groupings
(``namespace``), the decrypted blobs shared by every reader (``blobcache``), a file's bytes at
any offset (``content``), and the FUSE operations over them (``fs``, ``run``)."""
