/* The maps that the fan-out's eBPF program (fanout.bpf.c) and its loader (fanout_program.cc)
 * share: this header is compiled as C for the BPF target and as C++ on the host, so it uses only
 * <linux/types.h> and C that both accept. A change to a layout here is a change to the kernel-side
 * program and the loader at once (they are built from the same tree; libbpf refuses a key or
 * value whose size does not match the map's).
 */
#pragma once

#include <linux/types.h>

/* Stream ids index stream_counters, so they are below this; the streams map holds at most as
 * many entries. (An enum rather than a macro: one constant for both languages, no macro in C++.)
 */
enum { FANOUT_MAX_STREAMS = 1024 };

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
  __u32 id; /* < FANOUT_MAX_STREAMS: the index into stream_counters */
};

/* Value of the per-CPU array `stream_counters`, indexed by stream id. Each CPU adds to its own
 * copy without atomics; the loader sums the copies.
 */
struct fanout_counters {
  __u64 packets;
  __u64 bytes; /* whole frames as tc sees them: from the Ethernet header to the end */
};
