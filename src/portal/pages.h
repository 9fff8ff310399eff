/*
 * The portal's pages: plain server-rendered HTML, small, readable and
 * accessible (labels, alt text, keyboard use), working without
 * JavaScript. Every value is escaped.
 */
#ifndef PS_PAGES_H
#define PS_PAGES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "store/store.h"

/* The signed-in user as the layout shows them; NULL on the login page. */
struct page_viewer {
	const struct store_user	*user;
	const char		*csrf;	/* for the sign-out form */
};

void	page_login(struct buf *, const char *csrf, const char *return_url,
	    const char *error);
/*
 * `photo_tag` is a short tag of the current photo (its ETag), added to
 * the photo's URL so that a changed photo is fetched again rather than
 * taken from the browser's cache; NULL when there is none. `fetching`:
 * there is no photo yet and a sync of it is still running.
 */
void	page_my(struct buf *, const struct page_viewer *,
	    const struct store_sync *, const char *photo_source,
	    const char *photo_tag, bool fetching, const char *notice);
/*
 * The local upload form. `managed_url` non-NULL: the photo is managed by
 * the mail server, the page says so and links there instead. `error` and
 * `notice` are shown when not NULL.
 */
void	page_upload(struct buf *, const struct page_viewer *,
	    const char *photo_tag, const char *managed_url,
	    const char *error);
void	page_person(struct buf *, const struct page_viewer *,
	    const struct store_user *who, const char *photo_tag);
/* tags[i] is the photo tag of users[i] ("" when none). */
void	page_people(struct buf *, const struct page_viewer *,
	    const struct store_user *users, const char (*tags)[16],
	    size_t n);
void	page_error(struct buf *, const struct page_viewer *, int status,
	    const char *message);

#endif
