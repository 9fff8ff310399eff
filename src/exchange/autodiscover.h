/*
 * Autodiscover, both sides: the master's POX and SOAP GetUserSettings
 * answers, and the portal's SOAP GetUserSettings request and its parser.
 * Wire facts: reference exchange-wire.md §1-§2 ([MS-OXDSCLI], the EWS
 * Managed API, exchangelib). XML goes through the hardened xml module.
 */
#ifndef PS_AUTODISCOVER_H
#define PS_AUTODISCOVER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/*
 * Looks a mailbox up: PS_OK and *display_name (owned by the caller, free())
 * when it exists, PS_ENOTFOUND when it does not.
 */
typedef ps_err (*ad_lookup_fn)(void *arg, const char *email,
    char **display_name);

struct ad_server {
	const char	*base_url;	/* "https://host[:port]", no slash */
	const char	*domain;	/* mail domain, realm= of the ECP URL */
	const char	*deployment_id;	/* a GUID (the master's realm) */
	ad_lookup_fn	 lookup;
	void		*lookup_arg;
};

/* What happened, for the caller's log line. Strings are borrowed. */
struct ad_outcome {
	int		 status;	/* HTTP status to send */
	char		 email[256];	/* the (first) address asked for, or "" */
	const char	*result;	/* "settings", "error-500", ... */
	/* SOAP: how many users were asked for, and their addresses for the
	 * log (comma-separated, ending "..." when they did not fit) */
	size_t		 users;
	char		 emails[200];	/* log_q's cap */
	bool		 emails_cut;
};

/*
 * The URLs the master publishes, derived from base_url:
 *   EWS        <base>/EWS/Exchange.asmx
 *   Photos     <base>/EWS/Exchange.asmx/s
 *   ECP        <base>/ecp/
 *   ECP photo  <base>/ecp/PersonalSettings/EditAccount.aspx?rfr=olk&
 *              chgPhoto=1&exsvurl=1&realm=<domain>
 */

/*
 * Answers a POX request (POST /autodiscover/autodiscover.xml). Always fills
 * `out` with a response document (settings, or an Error with code 500 for
 * an unknown address, 600 for an invalid request, 601 for an unsupported
 * response schema, 603 when the lookup itself fails) in the exact shape
 * real clients parse. The status is always 200. Appends to `out`; an
 * answer that does not fit under its cap is replaced by the 603 error.
 */
void	autodiscover_pox(const struct ad_server *, const char *body,
	    size_t len, struct buf *out, struct ad_outcome *);

/*
 * Answers a SOAP GetUserSettings request (POST
 * /autodiscover/autodiscover.svc): only the settings asked for, the rest in
 * UserSettingErrors; InvalidUser for an unknown address; ErrorCode
 * InvalidRequest (status 200) for no users or no settings; a SOAP fault
 * with status 400 for malformed XML or a non-SOAP body, and status 500
 * (a:ActionNotSupported, as WCF) for an operation other than
 * GetUserSettings. Dispatches on wsa:Action and the Body element only.
 */
void	autodiscover_soap(const struct ad_server *, const char *body,
	    size_t len, struct buf *out, struct ad_outcome *);

/* --- the client side (the portal) --- */

/*
 * Builds a SOAP GetUserSettings request for one mailbox, asking for
 * `settings` (names such as "ExternalPhotosUrl"), addressed to `to_url`.
 */
ps_err	autodiscover_soap_request(struct buf *out, const char *to_url,
	    const char *email, const char *const *settings, size_t n);

/*
 * For several mailboxes in one call (1 to AD_MAX_USERS), as a client
 * that fetches many users' settings does: the answer has one
 * UserResponse per mailbox, in the same order.
 */
#define AD_MAX_USERS	100
ps_err	autodiscover_soap_request_many(struct buf *out, const char *to_url,
	    const char *const *emails, size_t n_emails,
	    const char *const *settings, size_t n);

struct ad_user_settings {
	char	*error_code;	/* "NoError", "InvalidUser", ... */
	char	*error_message;
	char	*redirect_target;	/* for RedirectAddress/Url, or NULL */
	char	*ews_url;	/* ExternalEwsUrl, else InternalEwsUrl */
	char	*photos_url;	/* ExternalPhotosUrl, else InternalPhotosUrl */
	char	*ecp_photo_url;	/* ExternalEcpPhotoUrl, else Internal... */
	char	*display_name;	/* UserDisplayName */
	bool	 external_photos;	/* photos_url is the External one */
	bool	 external_ecp_photo;	/* ecp_photo_url is the External one */
};

/*
 * Parses a GetUserSettings response. A response-level or user-level error
 * is not a failure of this function: it fills error_code/error_message.
 * Fails (PS_EUPSTREAM) only when the document is not a GetUserSettings
 * response at all. Free with ad_user_settings_cleanup().
 */
ps_err	autodiscover_soap_parse(const char *body, size_t len,
	    struct ad_user_settings *out);
/*
 * The answer to autodiscover_soap_request_many() for `n` mailboxes into
 * out[0..n), in the request's order; PS_EUPSTREAM as above, and when
 * the answer has fewer UserResponses. Clean up each entry.
 */
ps_err	autodiscover_soap_parse_many(const char *body, size_t len,
	    struct ad_user_settings *out, size_t n);
void	ad_user_settings_cleanup(struct ad_user_settings *);

/*
 * What a parsed answer means for one user (reference §2.3; the sync and
 * the many-users prefetch read answers through this alone):
 *   AD_MAILBOX           NoError (or no code) with a photos URL and an
 *                        ECP photo URL: the user has a mailbox there.
 *   AD_NO_MAILBOX        InvalidUser, or NoError without either URL.
 *   AD_REDIRECT_ADDRESS  ask again about redirect_target (an address).
 *   AD_REDIRECT_URL      ask redirect_target (a URL) again.
 *   AD_ERROR             any other code (ServerBusy, InternalServerError,
 *                        InvalidRequest, ...), or a redirect without a
 *                        target: an error, which says nothing about the
 *                        mailbox.
 * `why` gets a sentence for the log (may be NULL).
 */
enum ad_verdict {
	AD_MAILBOX,
	AD_NO_MAILBOX,
	AD_REDIRECT_ADDRESS,
	AD_REDIRECT_URL,
	AD_ERROR,
};
enum ad_verdict autodiscover_verdict(const struct ad_user_settings *,
	    char *why, size_t n);

/*
 * The redirects one lookup followed, so that it ends: at most AD_MAX_HOPS
 * redirects (the limit real clients use, reference §1.4), each to an
 * https URL, never back to a (URL, address) pair already asked.
 */
#define AD_MAX_HOPS	10
struct ad_hops {
	size_t	 n;			/* pairs asked, the first included */
	char	*url[AD_MAX_HOPS + 1];	/* owned */
	char	*email[AD_MAX_HOPS + 1];	/* owned */
};

/*
 * Records that (url, email) is about to be asked. PS_OK; PS_EINVAL (with
 * a sentence) for a URL that is not https or an address that is not one;
 * PS_ELIMIT past AD_MAX_HOPS redirects; PS_EEXIST for a loop. The first
 * call records the lookup's own start (it is no redirect). Free with
 * ad_hops_cleanup().
 */
ps_err	ad_hops_add(struct ad_hops *, const char *url, const char *email);
void	ad_hops_cleanup(struct ad_hops *);

/*
 * The SOAP Autodiscover URL for `email`: https://<domain>/autodiscover/
 * autodiscover.svc, where domain is `ad_domain` when set ("" or NULL:
 * autodiscover.<the address's domain>). Owned by the caller; PS_EINVAL
 * for an address without a domain, or whose domain is not a host name.
 */
ps_err	autodiscover_url(const char *ad_domain, const char *email,
	    char **url);

#endif
