/*
 * Portal account names, as the original accepts them: "contoso\test1",
 * the claims form "i:0#.w|contoso\test1", or an e-mail address; and the
 * User Photos library's file names ("contoso_test1_LThumb.jpg").
 * Pure functions.
 */
#ifndef PS_ACCOUNT_H
#define PS_ACCOUNT_H

#include <stdbool.h>

#include "common/err.h"

#define ACCOUNT_MAX 256

/*
 * Normalises `in` into `out` (lower case): "contoso\test1" for the account
 * forms, the address for an e-mail (then *is_email is true). Refuses
 * (PS_EINVAL) anything else, including path characters ('/', "..", NUL,
 * control characters) and empty parts.
 */
ps_err	account_parse(const char *in, char out[ACCOUNT_MAX], bool *is_email);

/* "contoso\test1" -> "contoso_test1", the library file prefix. */
void	account_file_prefix(const char *account, char out[ACCOUNT_MAX]);

/*
 * Splits a library file name "contoso_test1_MThumb.jpg" into its prefix
 * ("contoso_test1") and size letter ('S', 'M' or 'L'); PS_EINVAL if it is
 * not one.
 */
ps_err	account_parse_file(const char *name, char prefix[ACCOUNT_MAX],
	    char *size);

/*
 * The avatar hashes of an address (Libravatar/Gravatar): MD5 and SHA-256
 * of the trimmed, lower-cased address, as lower-case hex.
 */
void	account_email_hashes(const char *email, char md5[33],
	    char sha256[65]);

#endif
