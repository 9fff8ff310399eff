"""A portal whose disk is full (a file size limit of one byte: every write
to its store and its log fails, reads still work). A sync that cannot
store the photo answers with what is cached, the real error is what is
logged, and the error window holds from memory: the master is not asked
again on every request. Once there is room again (the limit raised while
it runs) the same process logs what it kept, and stores again."""
import re
import subprocess

from psync import done, is_eq, ok, photo_path, skip_all_on_postgresql, wired

# A file size limit stops the portal's own writes: on PostgreSQL the
# store is written by the server's processes, which the limit does not
# reach.
skip_all_on_postgresql("a full disk is the SQLite file's (and the log's)")
T1, T2 = "contoso\\test1", "contoso\\test2"
m, p = wired()
log_at = len(p.server.logs())


def file_size_limit(value):
    """The running portal's RLIMIT_FSIZE (soft), set from outside."""
    subprocess.run(["prlimit", "--pid", str(p.server.proc.pid),
                    "--fsize=%s:" % value], check=True)


file_size_limit(1)


def master_photo_calls():
    return len(re.findall(r"ev=http\.request method=GET path=/EWS/Exchange"
                          r"\.asmx/s/GetUserPhoto", m.server.logs(), re.I))


calls = master_photo_calls()
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.status == 200 and "placeholder" in (r.header("ETag") or ""),
   "disk full: the owner's sync cannot store the photo; the placeholder "
   "is served (%d, %s)" % (r.status, r.header("ETag")))
is_eq(master_photo_calls(), calls + 1, "the master was asked once")
r = p.get(photo_path(T1, "L"), as_user=T1)
is_eq(r.status, 200, "the next request is answered")
is_eq(master_photo_calls(), calls + 1,
      "the error window holds from memory: the master is not asked again")
r = p.get(photo_path(T2, "M"), as_user=T2)
is_eq(r.status, 200, "other users are served meanwhile")

# Room again: the same process writes what it kept, and stores again.
file_size_limit("unlimited")
r = p.get("/my/photochanged", as_user=T1)    # forces a sync, and a line
is_eq(r.status, 303, "back from the master's page: a sync runs")
r = p.get(photo_path(T1, "L"), as_user=T1)
ok(r.status == 200 and "placeholder" not in (r.header("ETag") or ""),
   "with room again, the same process stores the photo (%s)" %
   r.header("ETag"))
log = p.server.logs()[log_at:]
ok(re.search(r"ev=store\.error .*error=\"?(database or disk is full|disk "
             r"I/O error)", log), "the store's real error was logged "
   "(not a failed rollback)")
ok("no transaction is active" not in log, "no misleading rollback error")
ok(re.search(r"ev=sync\.state_not_saved ", log),
   "sync.state_not_saved says what was kept in memory only")
lines = log.splitlines()
ok(lines and all(ln.startswith("ts=") and " ev=" in ln for ln in lines),
   "every line of the log is whole (none torn by the full disk)")
p.stop()
m.stop()
done()
