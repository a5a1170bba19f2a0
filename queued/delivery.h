/* The connection to tern-deliverd and the delivery jobs in flight on it. */
#pragma once

#include "queue.h"

int delivery_new(Queue *q, Delivery **ret);
Delivery *delivery_free(Delivery *d);
DEFINE_POINTER_CLEANUP(Delivery, delivery_free);

/* Appends m to the ready list and starts jobs if a slot is free. */
void delivery_enqueue(Delivery *d, QueueMsg *m);

/* Takes m out of the ready list (it is removed or put on hold). */
void delivery_forget(Delivery *d, QueueMsg *m);

/* Shutdown: no new job is sent; done(userdata) is called from the event loop
 * once no job is in flight (at once if none is). Results of the jobs in
 * flight are still recorded as they come. */
void delivery_stop(Delivery *d, void (*done)(void *userdata), void *userdata);

/* Number of jobs deliverd has now. */
size_t delivery_in_flight(const Delivery *d);
