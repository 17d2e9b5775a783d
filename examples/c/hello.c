/*
 * hello: the smallest complete sufast program in C.
 *
 * Serves a static JSON route table on 127.0.0.1 until SIGINT or SIGTERM,
 * then stops the server gracefully and exits 0. Any failing call prints
 * the library's own message to stderr and exits 1.
 *
 *   usage: hello [PORT]     (PORT 0, the default, picks a free port)
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sufast.h"

/* Seed format: method -> path -> JSON body, served as application/json. */
static const char ROUTES[] =
    "{\"GET\": {"
    "\"/\": \"{\\\"hello\\\":\\\"world\\\"}\", "
    "\"/health\": \"{\\\"ok\\\":true}\""
    "}}";

/* Prints why the last sufast call on this thread failed. */
static void print_last_error(const char *call)
{
    /* A first call with no buffer asks for the message's length. */
    size_t len = sufast_last_error(NULL, 0);
    char *message = malloc(len + 1);

    if (message == NULL) {
        fprintf(stderr, "hello: %s failed (no memory for the message)\n", call);
        return;
    }
    sufast_last_error(message, len + 1);
    fprintf(stderr, "hello: %s failed: %s\n", call, message);
    free(message);
}

/* Parses PORT strictly: digits only, 0..65535. */
static int parse_port(const char *text, uint16_t *port)
{
    char *end = NULL;
    unsigned long value;

    if (text[0] < '0' || text[0] > '9') {
        return -1;
    }
    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > UINT16_MAX) {
        return -1;
    }
    *port = (uint16_t)value;
    return 0;
}

int main(int argc, char **argv)
{
    uint16_t port = 0;
    sigset_t stop_signals;
    int signal_number = 0;
    int err;

    if (argc > 2 || (argc == 2 && parse_port(argv[1], &port) != 0)) {
        fprintf(stderr, "usage: %s [PORT]   (PORT 0..65535, 0 picks a free one)\n",
                argv[0]);
        return 2;
    }

    /*
     * Block the stop signals before the server starts its threads: they
     * inherit this mask, so the signals stay pending for sigwait below
     * instead of killing the process on whichever thread they land.
     */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    err = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    if (err != 0) {
        fprintf(stderr, "hello: pthread_sigmask failed: %s\n", strerror(err));
        return 1;
    }

    if (!set_routes((const uint8_t *)ROUTES, strlen(ROUTES))) {
        print_last_error("set_routes");
        return 1;
    }
    if (!start_server(false, port)) {
        print_last_error("start_server");
        return 1;
    }

    /* The port is bound by now, so a client may connect as soon as it reads this. */
    printf("listening on http://127.0.0.1:%u\n", (unsigned)sufast_bound_port());
    if (fflush(stdout) != 0) {
        perror("hello: cannot write to stdout");
        sufast_stop_server();
        return 1;
    }

    err = sigwait(&stop_signals, &signal_number);
    if (err != 0) {
        fprintf(stderr, "hello: sigwait failed: %s\n", strerror(err));
        sufast_stop_server();
        return 1;
    }

    if (!sufast_stop_server()) {
        print_last_error("sufast_stop_server");
        return 1;
    }
    return 0;
}
