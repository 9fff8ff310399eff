/*
 * Counters and histograms in the Prometheus text format (version 0.0.4),
 * and the address check that keeps /metrics to configured clients.
 *
 * One registry per process, updated on the event loop thread only.
 * Series are identified by a metric name and a label set written as
 * Prometheus writes it (`route="userphoto",status="200"`); label values
 * must already be safe (our own route names, numbers, outcome words).
 */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* Declares a metric's help text and type once ("counter", "gauge",
 * "histogram"); series of undeclared metrics are still rendered. */
void	metrics_declare(const char *name, const char *type, const char *help);
void	metrics_add(const char *name, const char *labels, double v);
void	metrics_set(const char *name, const char *labels, double v);
/* Observes one value (seconds) into the standard latency buckets. */
void	metrics_observe(const char *name, const char *labels, double v);
/*
 * A series by handle, for a hot path that updates the same few series
 * over and over: the lookup is done once. Handles stay valid until
 * metrics_reset().
 */
struct metrics_series;
struct metrics_series *metrics_counter(const char *name, const char *labels);
struct metrics_series *metrics_histogram(const char *name,
	    const char *labels);
void	metrics_series_add(struct metrics_series *, double v);
void	metrics_series_observe(struct metrics_series *, double v);
/* The whole registry in the text exposition format. */
ps_err	metrics_render(struct buf *out);
/* Forgets every series (tests). */
void	metrics_reset(void);

/*
 * A list of addresses and networks ("127.0.0.0/8,::1/128,10.1.2.3")
 * allowed to read /metrics. `spec` empty or NULL means loopback only.
 */
struct metrics_acl;
ps_err	metrics_acl_parse(const char *spec, struct metrics_acl **out);
bool	metrics_acl_allows(const struct metrics_acl *, const char *peer);
void	metrics_acl_free(struct metrics_acl *);

#endif
