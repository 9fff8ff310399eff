/*
 * photosync demo: the seed article's environment on one machine.
 */
#ifndef PS_DEMO_H
#define PS_DEMO_H

int	demo_main(int argc, char **argv);

#endif
