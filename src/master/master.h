/*
 * photosync master: the mail server's part (what Exchange 2013 plays in
 * the photo sync). master_main() dispatches the admin commands and serve.
 */
#ifndef PS_MASTER_H
#define PS_MASTER_H

int	master_main(int argc, char **argv);

#endif
