/* The maps that the fan-out's eBPF program (fanout.bpf.c) and its loader (fanout_program.cc)
 * share: this header is compiled as C for the BPF target and as C++ on the host, so it uses only
 * <linux/types.h> and C that both accept. A change to a layout here is a change to the kernel-side
 * program and the loader at once (they are built from the same tree; libbpf refuses a key or
 * value whose size does not match the map's).
 *
 * Who writes what: the loader writes the configuration maps (streams, stream_config,
 * stream_consumers, consumers); the program writes the state and counter maps (stream_state,
 * consumer_state, stream_counters, consumer_counters), which the loader only resets when it
 * (re)uses a slot and reads for statistics. No value is written by both sides, so a policy change
 * never overwrites the data path's accumulators.
 */
#pragma once

#include <linux/types.h>

#include "drop_policy.h"
#include "ts_dpi.h"

/* (Enums rather than macros: one constant for both languages, no macro in C++.) */
enum {
  /* Stream ids index the per-stream arrays, so they are below this; the streams hash holds at
   * most as many entries. */
  FANOUT_MAX_STREAMS = 1024,
  /* The consumers one stream can have. The program walks a stream's consumer list with
   * bpf_loop, so the verifier puts no bound on it; this one is chosen for time: every consumer
   * costs a clone and a transmit (around a microsecond) in the softirq that received the
   * datagram, so 256 consumers hold that CPU for about a quarter of a millisecond per datagram,
   * the most an edge node should spend on one packet before other traffic suffers. */
  FANOUT_MAX_CONSUMERS_PER_STREAM = 256,
  /* Consumer slots over all streams: the size of the per-consumer arrays (the per-CPU counters
   * cost 4096 x 112 bytes per CPU). */
  FANOUT_MAX_CONSUMERS = 4096,
};

/* Key of `streams`: a stream is recognised by where its packets go. Both fields are in network
 * byte order, as they are in the packet, so the program compares them without swapping. The hash
 * compares every byte of the key, so `pad` is named and must be zero.
 */
struct fanout_stream_key {
  __u32 daddr; /* IPv4 destination address */
  __u16 dport; /* UDP destination port */
  __u16 pad;
};

/* Value of `streams`. */
struct fanout_stream {
  __u32 id; /* < FANOUT_MAX_STREAMS: the index into the per-stream arrays */
};

/* Value of the array `stream_config`, indexed by stream id (loader-written). */
struct fanout_stream_config {
  /* Entries 0..consumer_slots-1 of the stream's part of stream_consumers are looked at: one more
   * than the highest entry in use (a removal leaves a hole, which the program skips). At most
   * FANOUT_MAX_CONSUMERS_PER_STREAM. */
  __u32 consumer_slots;
  __u32 pad;
};

/* The array `stream_consumers` has FANOUT_MAX_STREAMS * FANOUT_MAX_CONSUMERS_PER_STREAM entries:
 * stream s's list is entries s * FANOUT_MAX_CONSUMERS_PER_STREAM + 0..255. An entry is a consumer
 * slot + 1, or 0 for none. */

/* Flags of a consumer. */
enum {
  /* Deliver the copy to the interface's ingress (BPF_F_INGRESS), as if the interface had received
   * it: how a process on the edge host itself is reached (through lo, for example). Without it the
   * copy is transmitted on the interface (on a veth: received by its peer). */
  FANOUT_CONSUMER_INGRESS = 1,
};

/* Value of the array `consumers`, indexed by consumer slot (loader-written). */
struct fanout_consumer {
  __u32 stream_id; /* the stream it consumes; the program checks it, so a slot that is being
                    * reused for another stream's consumer never gets this stream's packets */
  __u32 ifindex;   /* where its copies go */
  __u32 daddr;     /* its IPv4 address, network byte order */
  __u16 dport;     /* its UDP port, network byte order */
  __u8 active;     /* 0: the slot is free */
  __u8 flags;      /* FANOUT_CONSUMER_* */
  __u8 dmac[6];    /* the Ethernet destination of its copies (its interface's address) */
  __u8 smac[6];    /* the Ethernet source of its copies (the sending interface's address) */
  /* Double-buffered: the program reads policies[policy_index & 1]. A map update copies the whole
   * value with no atomicity a reader could rely on, so a policy change is two updates: the new
   * policy into the other entry, then the index (one byte). Each rewrites the bytes a reader may
   * be using with the same bytes, so a datagram is never decided by half of each policy. */
  struct ef_consumer_policy policies[2];
  __u8 policy_index;
  __u8 pad[3];
};

/* Value of the per-CPU array `stream_counters`, indexed by stream id. Each CPU adds to its own
 * copy without atomics; the loader sums the copies. */
struct fanout_stream_counters {
  __u64 packets;     /* datagrams to the stream's address, well-formed or not */
  __u64 bytes;       /* whole frames as tc sees them: from the Ethernet header to the end */
  __u64 uninspected; /* forwarded whole: not 1..EF_MAX_TS_PER_DATAGRAM whole TS packets */
  __u64 malformed;   /* not forwarded: UDP/IP lengths that lie, fragments, unreadable bytes */
  __u64 ts_packets[EF_CLASS_COUNT]; /* inspected TS packets, by class (invalid ones as OTHER) */
  __u64 invalid_ts;                 /* of which: no sync byte or a lying adaptation field */
  __u64 pad;
};

/* The per-consumer per-CPU counters are struct ef_consumer_counters (drop_policy.h), counted by
 * the same function in the kernel and in userspace. */
