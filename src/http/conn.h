/*
 * Inside the HTTP server: the server, connection and request types that
 * server.c (the server and the handlers' API) and conn.c (connections:
 * bytes in and out, requests read, the send step) share. Not for use
 * outside src/http/.
 */
#ifndef PS_HTTP_CONN_H
#define PS_HTTP_CONN_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <sys/queue.h>

#include "common/buf.h"
#include "parse.h"
#include "server.h"

#define TLS_RECORD	16384		/* the most one TLS record carries */
#define SWEEP_MS	1000		/* the most between deadline checks */

TAILQ_HEAD(conn_list, conn);

struct sni_name {
	struct sni_name	*next;
	char		*host;
	struct http_tls	*tls;		/* borrowed */
};

struct http_tls {
	SSL_CTX		*ctx;
	struct sni_name	*names;		/* other certificates, by name */
	char		*cert_path, *key_path;	/* read again on reload */
	SSL_CTX		*next;		/* read again, not in use yet */
};

/* The metrics series of one route and status, looked up once. */
struct route_series {
	const char		*route;		/* static */
	int			 status;
	struct metrics_series	*requests, *seconds;
};
#define ROUTE_SERIES	32

struct http_server {
	struct event_base	*base;
	const char		*proc;
	http_handler_fn		 handler;
	void			*arg;
	struct http_tls		*tls;		/* borrowed; NULL: plain */
	size_t			 max_body;	/* without a gate */
	http_body_gate_fn	 gate;
	void			*gate_arg;
	http_error_body_fn	 error_body;
	void			*error_body_arg;
	int			 lfd;
	struct event		*listen_ev;
	bool			 accept_paused;
	struct event		*sweep_ev;
	struct conn		*conns;

	/* Stopping (http_server_drain). */
	bool			 draining;
	void			(*drained)(void *);
	void			*drained_arg;
	struct event		*drained_ev;	/* calls drained() */
	struct event		*drain_timer;	/* the drain deadline */
	struct route_series	 series[ROUTE_SERIES];
	size_t			 nseries;
};

struct http_req {
	struct conn		*c;	/* the one it is part of (conn_new) */
	struct http_head	 head;
	enum http_method	 method;
	struct http_param	 params[HTTP_MAX_PARAMS];
	size_t			 nparams;
	char			 id[65];	/* ours, not the client's */
	char			 client_id[65];	/* client-request-id or "" */
	const char		*path_raw;	/* in the connection's scratch */
	const char		*path;
	char			*body;		/* in the connection's buffer */
	size_t			 body_len;
	int64_t			 start_ms;
	char			 notes[1024];	/* " key=value", escaped */
	size_t			 notes_len;
	bool			 gone;	/* the client closed the connection */
	const char		*route;	/* static; for metrics */
	bool			 quiet;	/* a success logged at debug level */
	bool			 in_error_body;	/* the server's error_body hook */
};

struct conn {
	struct conn		*prev, *next;	/* the server's */
	TAILQ_ENTRY(conn)	 sendq;
	struct conn_list	*queued;	/* the list it waits on */
	TAILQ_ENTRY(conn)	 lru;		/* evictable, by activity */
	bool			 on_lru;
	bool			 may_send;	/* its log lines are out */
	struct http_server	*srv;	/* NULL once closed */
	int			 fd;
	SSL			*ssl;	/* NULL: plain */
	struct event		*ev;
	char			 peer[INET6_ADDRSTRLEN];
	bool			 noted;	/* http_req_conn_first_note() */

	/* Clocks (time_mono_ms) for the deadlines that conn_sweep_cb keeps. */
	int64_t			 accepted_ms;	/* the TLS handshake's */
	int64_t			 active_ms;	/* bytes last moved */
	int64_t			 idle_ms;	/* idle since */
	int64_t			 head_ms;	/* a head started (0: none) */
	int64_t			 body_ms;	/* reading the body since */
	size_t			 body_got;	/* bytes read since body_ms */

	bool			 in_drive;	/* conn_drive() is running */
	bool			 busy;		/* a request is with a handler */
	bool			 close_after;	/* once the output is out */
	bool			 lingering;	/* draining before close */

	char			*in;		/* what the client sent */
	size_t			 in_len, in_cap;
	bool			 have_head;	/* req.head is parsed */
	bool			 req_started;	/* req has its id and clock */
	bool			 body_admitted;	/* its size fits: reading it */
	bool			 body_unread;	/* answered before its end? */
	bool			 gate_asked;	/* the body gate was called */
	bool			 gating;	/* waiting for the gate */
	size_t			 body_max;	/* decoded bytes allowed */
	size_t			 reserved;	/* of the body memory budget */
	bool			 sent_continue;
	struct http_chunked	 chunked;	/* a chunked body's decoder */
	size_t			 req_used;	/* bytes of `in` req took */
	bool			 nul_placed;	/* the body's NUL, at... */
	size_t			 nul_at;
	char			 nul_saved;	/* ...hiding this byte */

	struct buf		 out;		/* head and body start */
	size_t			 out_off;
	const char		*ref;		/* the rest of a shared body */
	size_t			 ref_len, ref_off;
	void			(*release)(void *);
	void			*release_arg;

	struct buf		 hdrs;		/* fields the handler added */
	char			*scratch;	/* decoded path and query */
	size_t			 scratch_cap;
	struct http_req		 req;
};

/* ---- what conn.c offers server.c ---- */

/* The loop's send step: one per process, shared by its servers. */
void	conn_loop_join(struct event_base *);
void	conn_loop_leave(void);
/* Runs the send step soon (log lines are waiting). */
void	conn_send_soon(void);
/* Event callbacks: the listener's, and the server's sweep timer. */
void	conn_accept_cb(evutil_socket_t, short, void *srv);
void	conn_sweep_cb(evutil_socket_t, short, void *srv);
/* How often the sweep runs under the limits in force (milliseconds). */
int64_t	conn_sweep_ms(void);
/* The limits in force, resolved once before the first server listens. */
const struct http_limits *conn_limits(void);
/* Lets the gated request's body be read (http_req_body_allow). */
void	conn_body_allow(struct conn *, size_t max);
/* http_server_drain's part on the connections. */
void	conn_drain_server(struct http_server *);
/* Closes every connection of a draining server (its deadline passed). */
void	conn_drain_expire(struct http_server *);
/* Whether the connection closes after the answer being made. */
bool	conn_closes_after(const struct conn *);
/* The request's answer is queued: on to the next request. */
void	conn_answered(struct conn *);
/* Closes the connection (its memory stays while a handler has `req`). */
void	conn_close(struct conn *);
/* Frees a closed connection whose deferred request was just answered. */
void	conn_free(struct conn *);

#endif
