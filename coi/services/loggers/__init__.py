"""Logger data for a shipment, one module per job:

- `intake`: a file (or the API's JSON readings) read, checked, stored verbatim and judged,
  alarms raised at once; a refused file is kept in the audit trail.
- `rawfiles`: the file as uploaded: its bytes in chunks and its SHA-256, read back for download;
  who may see it; a refused upload kept in the audit trail.
- `readings`: the reading store: appending a file's readings (COPY on PostgreSQL) and
  reading them back in time order.
- `clocks`: a logger's clock read at a handoff scan, and the correction it brings.
- `evaluation`: a shipment's readings judged against its profile, logger by logger.
"""
