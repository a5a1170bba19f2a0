/* queued's listening socket and its peers: smtpd, sendmail and ternctl.
 * Each peer says IPC_HELLO first; every later frame goes through a table of
 * handlers by type (submission.c, admin.c). */
#pragma once

#include <sys/types.h>

#include "ipc.h"
#include "queue.h"

typedef struct Server Server;
typedef struct Submission Submission;
typedef struct Peer Peer;

struct Peer {
        Server *server;
        Queue *queue;
        int fd;
        sd_event_source *source;
        bool hello;
        bool trusted;           /* root, ourselves or smtpd: its client fields are recorded */
        bool committing;        /* its message is in the group commit: it must wait for QUEUED */
        bool smtpd_session;     /* an smtpd counted as an active session (stats.c) */
        uid_t uid;
        pid_t pid;
        char *user;             /* the peer's user name, for local submitters */
        IpcWriter *writer;      /* the server's, shared: frames are sent at once */
        Submission *submission; /* the transaction in progress, if any */
        Peer *prev, *next;
};

/* Takes over listen_fd (a listening SOCK_SEQPACKET socket). */
int server_new(Queue *q, int listen_fd, Server **ret);
Server *server_free(Server *s);
DEFINE_POINTER_CLEANUP(Server, server_free);

/* Stops accepting and closes every peer (a transaction in progress is lost,
 * never acknowledged). */
void server_stop(Server *s);

/* Closes p and forgets it (a message of its in the group commit stays). */
void peer_close(Peer *p);

/* Sends the frame in p->writer. Returns 0 or -errno. */
int peer_send(Peer *p);
/* Sends IPC_ERROR {code, dsn, text}. Returns 0 or -errno. */
int peer_send_error(Peer *p, unsigned code, const char *dsn, const char *text);
