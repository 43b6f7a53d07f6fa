"""Block devices: disks and images on the pool, hot-plug attachments, and who uses
which volume."""
