/*
 * The diagnose report (diag.h): aligned step lines on standard output.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/str.h"
#include "diag.h"

#define FIX_INDENT	"      "

void
diag_step(struct diag *d, enum diag_verdict v, const char *name,
    const char *fix, const char *fmt, ...)
{
	static const char *const words[] = { "PASS", "FAIL", "SKIP" };
	va_list ap;
	size_t n;

	printf("%s  %-13s ", words[v], name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (v == DIAG_FAIL && fix)
		printf(FIX_INDENT "fix: %s\n", fix);
	if (v == DIAG_PASS) {
		d->n_pass++;
	} else if (v == DIAG_SKIP) {
		d->n_skip++;
	} else {
		d->n_fail++;
		n = strlen(d->failed);
		snprintf(d->failed + n, sizeof(d->failed) - n, "%s%s%s%s",
		    n ? ", " : "", d->scope ? d->scope : "", d->scope ? "/" :
		    "", name);
	}
	fflush(stdout);
}

int
diag_end(struct diag *d)
{
	if (d->n_fail == 0)
		printf("all %d checks passed%s\n", d->n_pass, d->n_skip ?
		    " (some did not apply)" : "");
	else
		printf("%d of %d checks failed: %s\n", d->n_fail, d->n_pass +
		    d->n_fail + d->n_skip, d->failed);
	fflush(stdout);
	return d->n_fail ? 1 : 0;
}

static void
name_of(char *buf, size_t n, const char *prefix, const char *step)
{
	snprintf(buf, n, "%s%s", prefix, step);
}

/* The fix for a TLS failure, from what the verification said. */
static const char *
tls_fix(const struct xfer_probe *p, const struct diag_route_fix *fx,
    char *buf, size_t n)
{
	const char *e = p->tls_error[0] ? p->tls_error : p->error;

	if (strstr(e, "subject name") || strstr(e, "does not match")) {
		snprintf(buf, n, "the server's certificate does not name "
		    "%.100s: give the server a certificate for that name, or "
		    "reach it by a name its certificate carries", p->host);
		return buf;
	}
	if (strstr(e, "expired") || strstr(e, "not yet valid"))
		return "the server's certificate is out of its validity "
		    "dates: renew it on the server (and check both clocks)";
	if (strstr(e, "certificate file") || strstr(e, "CA file") ||
	    strstr(e, "cert file") || strstr(e, "CAfile"))
		return "the CA file cannot be read as PEM certificates: give "
		    "a readable PEM file";
	if (strstr(e, "certificate") || strstr(e, "issuer") ||
	    strstr(e, "verify"))
		return fx->ca;
	snprintf(buf, n, "%.100s:%d does not speak TLS: check that the port is "
	    "the server's HTTPS port", p->host, p->port);
	return buf;
}

bool
diag_route(struct diag *d, const char *prefix, const struct xfer_probe *p,
    const struct diag_route_fix *fx)
{
	char dns[40], tcp[40], tls[40], fix[300];

	name_of(dns, sizeof(dns), prefix, "dns");
	name_of(tcp, sizeof(tcp), prefix, "tcp");
	name_of(tls, sizeof(tls), prefix, "tls");
	if (p->stage == XFER_STAGE_URL) {
		diag_step(d, DIAG_FAIL, dns, "use an https:// URL", "%s",
		    p->error);
		diag_step(d, DIAG_SKIP, tcp, NULL, "no usable URL");
		diag_step(d, DIAG_SKIP, tls, NULL, "no usable URL");
		return false;
	}
	if (p->stage == XFER_STAGE_DNS) {
		diag_step(d, DIAG_FAIL, dns, fx->dns, "%s", p->error);
		diag_step(d, DIAG_SKIP, tcp, NULL, "%s does not resolve",
		    p->host);
		diag_step(d, DIAG_SKIP, tls, NULL, "%s does not resolve",
		    p->host);
		return false;
	}
	if (p->is_ip)
		diag_step(d, DIAG_PASS, dns, NULL, "%s is an address (no "
		    "lookup)", p->host);
	else
		diag_step(d, DIAG_PASS, dns, NULL, "%s resolves to %s",
		    p->host, p->addrs);
	if (p->stage == XFER_STAGE_CONNECT) {
		diag_step(d, DIAG_FAIL, tcp, fx->connect, "%s", p->error);
		diag_step(d, DIAG_SKIP, tls, NULL, "no connection");
		return false;
	}
	diag_step(d, DIAG_PASS, tcp, NULL, "connected to %s port %d in %lld "
	    "ms", p->peer, p->port, (long long)p->connect_ms);
	if (!p->tls) {
		diag_step(d, DIAG_SKIP, tls, NULL, "plain http (allowed by "
		    "the settings): no TLS");
		return true;
	}
	if (p->stage == XFER_STAGE_TLS) {
		diag_step(d, DIAG_FAIL, tls, tls_fix(p, fx, fix, sizeof(fix)),
		    "%s%s", strncmp(p->error, "TLS verification", 16) == 0 ?
		    "certificate verify failed: " : "", strncmp(p->error,
		    "TLS verification", 16) == 0 && p->tls_error[0] ?
		    p->tls_error : p->error);
		return false;
	}
	diag_step(d, DIAG_PASS, tls, NULL, "certificate verified: %s%s%s",
	    p->cert_subject[0] ? p->cert_subject : "(subject not shown)",
	    p->cert_expires[0] ? ", valid until " : "", p->cert_expires);
	return true;
}

const char *
diag_ago(int64_t s, char buf[32])
{
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, 32, "%lld second%s", (long long)s, s == 1 ? "" :
		    "s");
	else if (s < 120 * 60)
		snprintf(buf, 32, "%lld minutes", (long long)(s / 60));
	else if (s < 48 * 3600)
		snprintf(buf, 32, "%lld hours", (long long)(s / 3600));
	else
		snprintf(buf, 32, "%lld days", (long long)(s / 86400));
	return buf;
}

bool
diag_store(const char *address, enum store_role role, const char *dir,
    char *what, size_t n)
{
	struct diag d = { 0 };
	char fix[512];
	bool reached;

	if (store_check(address, role, what, n, &reached) == PS_OK)
		return true;
	if (reached) {
		diag_step(&d, DIAG_FAIL, "store", NULL, "cannot be opened: %s",
		    ps_errmsg());
	} else {
		snprintf(fix, sizeof(fix), "start the PostgreSQL server, or "
		    "correct the address in %s/%s", dir, STORE_ADDRESS_FILE);
		diag_step(&d, DIAG_FAIL, "store", fix, "unreachable: %s",
		    ps_errmsg());
	}
	diag_end(&d);
	return false;
}
