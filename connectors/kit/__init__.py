"""What every connector shares: page tokens that cannot loop, an error table, streams as data.

- `paging`: `follow` pages by a token (cursor, offset, URL), and `PageTokens` refuses a token it
  has already been given, so a CRM answering the same page twice fails the stream at once.
- `errortable`: one table per connector from what the CRM answered (HTTP status, its error code,
  a body pattern) to the kpisync error tree, with the hint an admin acts on.
- `streams`: a connector's streams as declared data (`kpisync.connector.StreamSpec`) joined to
  the function that reads each, so `read()` dispatches by table, not by `if` on names.
"""
