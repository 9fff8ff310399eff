/*
 * Unit tests of the metrics registry (Prometheus text format) and the
 * address lists that guard /metrics.
 */
#include <string.h>

#include "metrics/metrics.h"
#include "t.h"

static void
test_render(void)
{
	struct buf b;

	metrics_reset();
	metrics_declare("ps_requests_total", "counter", "Requests.");
	metrics_add("ps_requests_total", "route=\"a\",status=\"200\"", 1);
	metrics_add("ps_requests_total", "route=\"a\",status=\"200\"", 2);
	metrics_add("ps_requests_total", "route=\"b\",status=\"404\"", 1);
	metrics_declare("ps_latency_seconds", "histogram", "Latency.");
	metrics_observe("ps_latency_seconds", "", 0.004);
	metrics_observe("ps_latency_seconds", "", 0.2);
	metrics_observe("ps_latency_seconds", "", 30);
	metrics_set("ps_undeclared", NULL, 7);
	buf_init(&b, 1 << 16);
	ok(metrics_render(&b) == PS_OK, "renders");
	ok(strstr(buf_str(&b), "# TYPE ps_requests_total counter\n") != NULL,
	    "type line");
	ok(strstr(buf_str(&b), "ps_requests_total{route=\"a\",status=\"200\"} "
	    "3\n") != NULL, "counter summed per label set");
	ok(strstr(buf_str(&b), "ps_latency_seconds_bucket{le=\"0.005\"} 1\n")
	    != NULL, "histogram buckets are cumulative (0.005)");
	ok(strstr(buf_str(&b), "ps_latency_seconds_bucket{le=\"0.25\"} 2\n")
	    != NULL, "histogram buckets are cumulative (0.25)");
	ok(strstr(buf_str(&b), "ps_latency_seconds_bucket{le=\"+Inf\"} 3\n")
	    != NULL, "+Inf counts everything");
	ok(strstr(buf_str(&b), "ps_latency_seconds_count 3\n") != NULL,
	    "count");
	ok(strstr(buf_str(&b), "ps_undeclared 7\n") != NULL,
	    "undeclared series still shown");
	buf_cleanup(&b);
	metrics_reset();
}

static void
test_acl(void)
{
	struct metrics_acl *acl = NULL;

	ok(metrics_acl_parse(NULL, &acl) == PS_OK, "default list");
	ok(metrics_acl_allows(acl, "127.0.0.1"), "loopback v4 allowed");
	ok(metrics_acl_allows(acl, "::1"), "loopback v6 allowed");
	ok(metrics_acl_allows(acl, "::ffff:127.0.0.1"), "mapped v4 allowed");
	ok(!metrics_acl_allows(acl, "10.0.0.1"), "others refused");
	ok(!metrics_acl_allows(acl, "junk"), "junk refused");
	metrics_acl_free(acl);
	ok(metrics_acl_parse("10.1.0.0/16, 192.168.1.7", &acl) == PS_OK,
	    "custom list");
	ok(metrics_acl_allows(acl, "10.1.200.3"), "inside the /16");
	ok(!metrics_acl_allows(acl, "10.2.0.1"), "outside the /16");
	ok(metrics_acl_allows(acl, "192.168.1.7"), "single address");
	ok(!metrics_acl_allows(acl, "127.0.0.1"), "loopback not implied");
	metrics_acl_free(acl);
	ok(metrics_acl_parse("10.0.0.0/33", &acl) == PS_EINVAL,
	    "bad prefix refused");
	ok(metrics_acl_parse("example.com", &acl) == PS_EINVAL,
	    "names refused");
}

int
main(void)
{
	test_render();
	test_acl();
	return done();
}
