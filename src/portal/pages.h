/*
 * The portal's pages: plain server-rendered HTML, small, readable and
 * accessible (labels, alt text, keyboard use), working without
 * JavaScript. Every value is escaped.
 */
#ifndef PS_PAGES_H
#define PS_PAGES_H

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
void	page_my(struct buf *, const struct page_viewer *,
	    const struct store_sync *, const char *photo_source);
void	page_person(struct buf *, const struct page_viewer *,
	    const struct store_user *who);
void	page_people(struct buf *, const struct page_viewer *,
	    const struct store_user *users, size_t n);
void	page_error(struct buf *, const struct page_viewer *, int status,
	    const char *message);

#endif
