/*
 * photosync portal: the portal's part (what SharePoint Server 2013 plays):
 * user profiles, the User Photos cache, on-demand sync from the master.
 */
#ifndef PS_PORTAL_H
#define PS_PORTAL_H

int	portal_main(int argc, char **argv);

#endif
