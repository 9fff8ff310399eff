-- A portal store at schema version 1, as the first release of photosync
-- wrote it (migration 1 of src/store/store_sqlite.c, frozen), with a row
-- in every table. test_store.c opens it with the current code: every
-- later migration must run and every row must be kept.
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE webapps (  id INTEGER PRIMARY KEY,  url TEXT NOT NULL UNIQUE COLLATE NOCASE,  host TEXT NOT NULL,  port INTEGER NOT NULL,  realm TEXT NOT NULL,  photo_import INTEGER NOT NULL,  photo_expiration INTEGER NOT NULL,  photo_error_expiration INTEGER NOT NULL,  autodiscover_domain TEXT NOT NULL DEFAULT '',  sync_any INTEGER NOT NULL DEFAULT 0,  size_s INTEGER NOT NULL, size_m INTEGER NOT NULL,  size_l INTEGER NOT NULL,  ca_file TEXT NOT NULL DEFAULT '',  allow_oauth_http INTEGER NOT NULL DEFAULT 0,  created INTEGER NOT NULL);
CREATE TABLE users (  account TEXT PRIMARY KEY COLLATE NOCASE,  email TEXT NOT NULL UNIQUE COLLATE NOCASE,  name TEXT NOT NULL DEFAULT '',  pwhash TEXT,  created INTEGER NOT NULL);
CREATE INDEX users_file_prefix ON users   (replace(account, '\', '_'));
CREATE TABLE issuers (  name TEXT PRIMARY KEY COLLATE NOCASE,  issuer TEXT NOT NULL,  realm TEXT NOT NULL,  metadata_url TEXT,  metadata TEXT NOT NULL,  fetched INTEGER NOT NULL);
CREATE TABLE thumbs (  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,  account TEXT NOT NULL COLLATE NOCASE    REFERENCES users(account) ON DELETE CASCADE,  source TEXT NOT NULL,  etag TEXT NOT NULL,  updated INTEGER NOT NULL,  s BLOB NOT NULL, m BLOB NOT NULL, l BLOB NOT NULL,  PRIMARY KEY (webapp, account));
CREATE TABLE sync_state (  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,  account TEXT NOT NULL COLLATE NOCASE    REFERENCES users(account) ON DELETE CASCADE,  last_success INTEGER NOT NULL DEFAULT 0,  last_error INTEGER NOT NULL DEFAULT 0,  reason TEXT NOT NULL DEFAULT '',  master_etag TEXT NOT NULL DEFAULT '',  has_mailbox INTEGER NOT NULL DEFAULT -1,  PRIMARY KEY (webapp, account));
CREATE TABLE sessions (  key TEXT PRIMARY KEY,  account TEXT NOT NULL COLLATE NOCASE    REFERENCES users(account) ON DELETE CASCADE,  webapp INTEGER NOT NULL REFERENCES webapps(id) ON DELETE CASCADE,  csrf TEXT NOT NULL,  expires INTEGER NOT NULL);
INSERT INTO config (key, value) VALUES ('setup', 'done');
INSERT INTO webapps (id, url, host, port, realm, photo_import,
  photo_expiration, photo_error_expiration, autodiscover_domain, sync_any,
  size_s, size_m, size_l, ca_file, allow_oauth_http, created)
  VALUES (1, 'https://portal.contoso.com', 'portal.contoso.com', 443,
  '9a1b2c3d-0000-0000-0000-000000000000', 1, 21600, 3600,
  'mail.contoso.com', 1, 48, 72, 300, '/etc/ca.pem', 0, 1700000000);
INSERT INTO users (account, email, name, pwhash, created)
  VALUES ('contoso\old', 'old@contoso.com', 'Old User',
  '$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2g', 1700000001);
INSERT INTO issuers (name, issuer, realm, metadata_url, metadata, fetched)
  VALUES ('Exchange', '00000002-0000-0ff1-ce00-000000000000@old-realm',
  'old-realm', 'https://mail.contoso.com/autodiscover/metadata/json/1',
  '{"keys":[]}', 1700000002);
INSERT INTO thumbs (webapp, account, source, etag, updated, s, m, l)
  VALUES (1, 'contoso\old', 'master', 'old-etag', 1700000003,
  X'5331', X'4d31', X'4c31');
INSERT INTO sync_state (webapp, account, last_success, last_error, reason,
  master_etag, has_mailbox)
  VALUES (1, 'contoso\old', 1700000004, 0, '', 'master-etag', 1);
INSERT INTO sessions (key, account, webapp, csrf, expires)
  VALUES ('old-session', 'contoso\old', 1, 'old-csrf', 4000000000);
PRAGMA user_version = 1;
