-- A master store at schema version 1, as the first release of photosync
-- wrote it (migration 1 of src/store/store_sqlite.c, frozen), with a row
-- in every table. test_store.c opens it with the current code: every
-- later migration must run and every row must be kept.
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE mailboxes (  email TEXT PRIMARY KEY COLLATE NOCASE,  name TEXT NOT NULL DEFAULT '',  pwhash TEXT,  created INTEGER NOT NULL);
CREATE TABLE photos (  email TEXT PRIMARY KEY COLLATE NOCASE    REFERENCES mailboxes(email) ON DELETE CASCADE,  etag TEXT NOT NULL,  side INTEGER NOT NULL,  updated INTEGER NOT NULL);
CREATE TABLE photo_sizes (  email TEXT NOT NULL COLLATE NOCASE    REFERENCES photos(email) ON DELETE CASCADE,  code INTEGER NOT NULL,  side INTEGER NOT NULL,  data BLOB NOT NULL,  PRIMARY KEY (email, code));
CREATE TABLE partners (  name TEXT PRIMARY KEY COLLATE NOCASE,  issuer TEXT NOT NULL UNIQUE,  metadata_url TEXT,  metadata TEXT NOT NULL,  fetched INTEGER NOT NULL,  added INTEGER NOT NULL);
INSERT INTO config (key, value) VALUES ('realm', 'old-realm');
INSERT INTO mailboxes (email, name, pwhash, created)
  VALUES ('old@contoso.com', 'Old Mailbox', '$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', 1700000000);
INSERT INTO mailboxes (email, name, pwhash, created)
  VALUES ('nopw@contoso.com', '', NULL, 1700000001);
INSERT INTO photos (email, etag, side, updated)
  VALUES ('old@contoso.com', 'old-etag', 96, 1700000002);
INSERT INTO photo_sizes (email, code, side, data)
  VALUES ('old@contoso.com', 0, 48, X'70686f746f203438');
INSERT INTO photo_sizes (email, code, side, data)
  VALUES ('old@contoso.com', 1, 96, X'70686f746f203936');
INSERT INTO partners (name, issuer, metadata_url, metadata, fetched, added)
  VALUES ('SharePoint', '00000003-0000-0ff1-ce00-000000000000@old-realm',
  'https://portal.contoso.com/_layouts/15/metadata/json/1', '{"keys":[]}',
  1700000003, 1700000004);
PRAGMA user_version = 1;
