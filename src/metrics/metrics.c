/*
 * A small metrics registry rendered in the Prometheus text format, and
 * address lists for who may read it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/xalloc.h"
#include "metrics.h"

#define N_BUCKETS 12

static const double buckets[N_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
};

enum kind { K_VALUE, K_HISTOGRAM };

struct metrics_series {
	struct metrics_series	*next;		/* in all_series, for render */
	struct metrics_series	*same_bucket;	/* in series_table */
	uint64_t	 hash;		/* of name and labels, to skip compares */
	char		*name;
	char		*labels;
	enum kind	 kind;
	double		 value;			/* counter, gauge, or sum */
	unsigned long	 count;
	unsigned long	 bucket[N_BUCKETS];	/* not cumulative */
};

struct family {
	struct family	*next;
	char		*name, *type, *help;
};

/*
 * Every series in the order made (the output's order), and the same
 * series by hash: a request's series are found without walking them all.
 */
#define TABLE_SIZE 1024
static struct metrics_series *all_series, **all_series_tail = &all_series;
static struct metrics_series *series_table[TABLE_SIZE];
static struct family *families;

void
metrics_declare(const char *name, const char *type, const char *help)
{
	struct family *f;

	for (f = families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return;
	f = xcalloc(1, sizeof(*f));
	f->name = xstrdup(name);
	f->type = xstrdup(type);
	f->help = xstrdup(help);
	/* Keep declaration order for a stable output. */
	if (families == NULL) {
		families = f;
	} else {
		struct family *t = families;

		while (t->next)
			t = t->next;
		t->next = f;
	}
}

static uint64_t
series_hash(const char *name, const char *labels)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 1099511628211ULL;
	h = (h ^ '{') * 1099511628211ULL;
	for (; *labels; labels++)
		h = (h ^ (unsigned char)*labels) * 1099511628211ULL;
	return h;
}

static struct metrics_series *
series_get(const char *name, const char *labels, enum kind kind)
{
	struct metrics_series *s, **bucket;
	uint64_t h;

	labels = labels ? labels : "";
	h = series_hash(name, labels);
	bucket = &series_table[h % TABLE_SIZE];
	for (s = *bucket; s; s = s->same_bucket)
		if (s->hash == h && strcmp(s->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			return s;
	s = xcalloc(1, sizeof(*s));
	s->hash = h;
	s->name = xstrdup(name);
	s->labels = xstrdup(labels);
	s->kind = kind;
	s->same_bucket = *bucket;
	*bucket = s;
	*all_series_tail = s;
	all_series_tail = &s->next;
	return s;
}

struct metrics_series *
metrics_counter(const char *name, const char *labels)
{
	return series_get(name, labels, K_VALUE);
}

struct metrics_series *
metrics_histogram(const char *name, const char *labels)
{
	return series_get(name, labels, K_HISTOGRAM);
}

void
metrics_series_add(struct metrics_series *s, double v)
{
	s->value += v;
}

void
metrics_series_observe(struct metrics_series *s, double v)
{
	int i;

	s->value += v;
	s->count++;
	for (i = 0; i < N_BUCKETS; i++)
		if (v <= buckets[i]) {
			s->bucket[i]++;
			break;
		}
}

void
metrics_add(const char *name, const char *labels, double v)
{
	metrics_series_add(metrics_counter(name, labels), v);
}

void
metrics_set(const char *name, const char *labels, double v)
{
	series_get(name, labels, K_VALUE)->value = v;
}

void
metrics_observe(const char *name, const char *labels, double v)
{
	metrics_series_observe(metrics_histogram(name, labels), v);
}

static void
render_series(struct buf *out, const struct metrics_series *s)
{
	const char *sep = s->labels[0] ? "," : "";
	unsigned long cum = 0;
	int i;

	if (s->kind == K_VALUE) {
		if (s->labels[0])
			buf_addf(out, "%s{%s} %.17g\n", s->name, s->labels,
			    s->value);
		else
			buf_addf(out, "%s %.17g\n", s->name, s->value);
		return;
	}
	for (i = 0; i < N_BUCKETS; i++) {
		cum += s->bucket[i];
		buf_addf(out, "%s_bucket{%s%sle=\"%g\"} %lu\n", s->name,
		    s->labels, sep, buckets[i], cum);
	}
	buf_addf(out, "%s_bucket{%s%sle=\"+Inf\"} %lu\n", s->name, s->labels,
	    sep, s->count);
	buf_addf(out, "%s_sum%s%s%s %.17g\n", s->name, s->labels[0] ? "{" : "",
	    s->labels, s->labels[0] ? "}" : "", s->value);
	buf_addf(out, "%s_count%s%s%s %lu\n", s->name, s->labels[0] ? "{" :
	    "", s->labels, s->labels[0] ? "}" : "", s->count);
}

ps_err
metrics_render(struct buf *out)
{
	const struct family *f;
	const struct metrics_series *s;

	for (f = families; f; f = f->next) {
		buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
		    f->name, f->type);
		for (s = all_series; s; s = s->next)
			if (strcmp(s->name, f->name) == 0)
				render_series(out, s);
	}
	/* Series nobody declared, so nothing is ever hidden. */
	for (s = all_series; s; s = s->next) {
		for (f = families; f; f = f->next)
			if (strcmp(s->name, f->name) == 0)
				break;
		if (f == NULL)
			render_series(out, s);
	}
	return out->b_len < out->b_max ? PS_OK : PS_ELIMIT;
}

void
metrics_reset(void)
{
	while (all_series) {
		struct metrics_series *s = all_series;

		all_series = s->next;
		free(s->name);
		free(s->labels);
		free(s);
	}
	all_series_tail = &all_series;
	memset(series_table, 0, sizeof(series_table));
}

/* ---- who may read ---- */

struct net {
	int		family;
	unsigned char	addr[16];
	int		bits;
};

struct metrics_acl {
	struct net	*nets;
	size_t		 n;
};

static ps_err
net_parse(const char *s, struct net *n)
{
	char host[64], *slash;
	int maxbits;

	if (!str_copy(host, s, sizeof(host)))
		return ps_errf(PS_EINVAL, "\"%s\" is not an address", s);
	slash = strchr(host, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->family = AF_INET6;
		maxbits = 128;
	} else {
		return ps_errf(PS_EINVAL, "\"%s\" is not an IP address or "
		    "network", s);
	}
	n->bits = maxbits;
	if (slash) {
		char *end;
		long b = strtol(slash + 1, &end, 10);

		if (*end || slash[1] == '\0' || b < 0 || b > maxbits)
			return ps_errf(PS_EINVAL, "\"%s\" has a bad prefix "
			    "length", s);
		n->bits = (int)b;
	}
	return PS_OK;
}

ps_err
metrics_acl_parse(const char *spec, struct metrics_acl **out)
{
	struct metrics_acl *acl = xcalloc(1, sizeof(*acl));
	char *copy, *tok, *save = NULL;
	ps_err rc = PS_OK;

	copy = xstrdup(spec && *spec ? spec : "127.0.0.0/8,::1/128");
	for (tok = strtok_r(copy, ", ", &save); tok;
	    tok = strtok_r(NULL, ", ", &save)) {
		acl->nets = xrealloc(acl->nets, (acl->n + 1) *
		    sizeof(*acl->nets));
		if ((rc = net_parse(tok, &acl->nets[acl->n])) != PS_OK)
			break;
		acl->n++;
	}
	free(copy);
	if (rc != PS_OK) {
		metrics_acl_free(acl);
		return rc;
	}
	*out = acl;
	return PS_OK;
}

static bool
net_contains(const struct net *n, int family, const unsigned char *a)
{
	int full = n->bits / 8, rest = n->bits % 8;

	if (family != n->family)
		return false;
	if (memcmp(n->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((n->addr[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

bool
metrics_acl_allows(const struct metrics_acl *acl, const char *peer)
{
	unsigned char a[16];
	int family;
	size_t i;

	if (inet_pton(AF_INET, peer, a) == 1) {
		family = AF_INET;
	} else if (inet_pton(AF_INET6, peer, a) == 1) {
		family = AF_INET6;
		/* An IPv4 client on a dual-stack socket. */
		if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (i = 0; i < acl->n; i++)
		if (net_contains(&acl->nets[i], family, a))
			return true;
	return false;
}

void
metrics_acl_free(struct metrics_acl *acl)
{
	if (acl == NULL)
		return;
	free(acl->nets);
	free(acl);
}
