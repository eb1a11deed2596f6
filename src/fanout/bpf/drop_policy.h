/* Which packets of a sensor's stream each consumer gets, shared by the tc eBPF program and the
 * userspace replicator (same C, same decisions; see ts_dpi.h for the rules of this C).
 *
 * A consumer tolerates losing a fraction of the differential (P/B) data: of every keep_den
 * differential units it gets keep_num. Reference pictures, unclassified pictures and everything
 * that is not video are never dropped. The choice of which units is exact and deterministic: a
 * credit accumulator (Bresenham), not a random draw, so a policy of 1/3 keeps exactly one unit in
 * three, and two runs over the same stream make the same choices.
 *
 * Two modes:
 *  - EF_DROP_PACKET (the paper's): the unit is a datagram whose TS packets all belong to
 *    differential pictures; it is forwarded or dropped whole. Cheap, but a dropped datagram
 *    leaves a hole in a picture, and every picture after it up to the next reference one may
 *    decode with errors.
 *  - EF_DROP_FRAME: the unit is a differential picture, dropped whole or not at all, and only so
 *    that the rest still decodes cleanly: pictures that no other picture references go first;
 *    when the consumer falls EF_OWED_LIMIT drops behind its target at a picture others do
 *    reference, the rest of the group of pictures up to the next reference picture goes (a GOP
 *    tail is always decodable without it). Over-dropping is repaid by keeping pictures later, so
 *    over time the consumer gets its ratio; the deviation is bounded by one GOP. TS packets of
 *    dropped pictures that share a datagram with kept data are not sent: the caller replaces
 *    them with null packets (PID 0x1FFF), which every demuxer skips.
 */
#ifndef EDGEFLOW_FANOUT_BPF_DROP_POLICY_H_
#define EDGEFLOW_FANOUT_BPF_DROP_POLICY_H_

#include <linux/types.h>

#include "ts_dpi.h"

#define EF_MAX_TS_PER_DATAGRAM 7 /* 1316 bytes: what fits an Ethernet MTU, by convention */
#define EF_OWED_LIMIT 2

enum ef_drop_mode {
  EF_DROP_PACKET = 0,
  EF_DROP_FRAME = 1,
};

/* Set by the control plane. keep_den == 0 or keep_num >= keep_den: everything is forwarded. */
struct ef_consumer_policy {
  __u32 keep_num;
  __u32 keep_den;
  __u8 mode; /* enum ef_drop_mode */
  __u8 pad[7];
};

/* Kept by the data path per consumer. All zero is the right start. */
struct ef_consumer_state {
  __u64 credit;    /* the accumulator, in units of 1/keep_den */
  __s64 balance;   /* frame mode: drops made minus drops decided (< 0: behind the target) */
  __u8 frame_keep; /* frame mode: the decision for the current picture (1 until one is made) */
  __u8 tail_drop;  /* frame mode: dropping up to the next reference picture */
  __u8 started;    /* a decision was made since the consumer was added */
  __u8 pad[5];
};

/* One unit: 1 = keep, 0 = drop, exactly keep_num of every keep_den. */
EF_INLINE int ef_credit_keep(const struct ef_consumer_policy* p, struct ef_consumer_state* c) {
  if (p->keep_den == 0 || p->keep_num >= p->keep_den) return 1;
  /* Credit is below keep_den, unless the policy changed to a smaller one: without this, credit
   * left from 333/1000 would keep every unit of a new 1/2 for hundreds of units. */
  if (c->credit >= p->keep_den) c->credit %= p->keep_den;
  c->credit += p->keep_num;
  if (c->credit >= p->keep_den) {
    c->credit -= p->keep_den;
    return 1;
  }
  return 0;
}

/* Frame mode, at the start of a picture: whether the consumer gets it. */
EF_INLINE int ef_decide_picture(const struct ef_consumer_policy* p, struct ef_consumer_state* c,
                                __u8 klass, __u8 referenced) {
  if (klass != EF_CLASS_DIFFERENTIAL) {
    if (klass == EF_CLASS_REFERENCE) c->tail_drop = 0;
    return 1; /* reference and unclassified pictures are always forwarded */
  }
  if (p->keep_num == 0 && p->keep_den != 0) {
    /* Nothing differential is wanted: every differential picture goes, from the first of each
     * GOP, which leaves the reference pictures alone and decodable. (The owed-drops rule below
     * would let referenced pictures through until two drops are owed.) */
    c->tail_drop = 1;
    return 0;
  }
  if (!ef_credit_keep(p, c)) c->balance--;
  int drop = 0;
  if (c->tail_drop) {
    drop = 1;
  } else if (c->balance < 0) {
    if (!referenced) {
      drop = 1;
    } else if (c->balance <= -EF_OWED_LIMIT) {
      drop = 1;
      c->tail_drop = 1; /* the pictures up to the next reference one need this one */
    }
  }
  if (drop) c->balance++;
  return !drop;
}

/* Decides what of one datagram a consumer gets. v[0..n) are the inspection's verdicts for the
 * datagram's TS packets, in order (n <= EF_MAX_TS_PER_DATAGRAM). Returns a bit mask of the TS
 * packets to send (bit i = packet i); 0 means the datagram is not sent at all. */
EF_INLINE __u32 ef_decide_datagram(const struct ef_consumer_policy* p, struct ef_consumer_state* c,
                                   const struct ef_ts_verdict* v, __u32 n) {
  __u32 all = 0;
  for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
    if (i >= n) break;
    all |= 1u << i;
  }
  if (p->mode == EF_DROP_FRAME) {
    __u32 keep = 0;
    for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
      if (i >= n) break;
      if (!v[i].valid || v[i].klass == EF_CLASS_OTHER) {
        keep |= 1u << i;
        continue;
      }
      if (v[i].frame_start) {
        c->frame_keep = (__u8)ef_decide_picture(p, c, v[i].klass, v[i].referenced);
        c->started = 1;
      }
      /* A consumer added in the middle of a picture gets that picture. */
      if (!c->started || c->frame_keep || v[i].klass != EF_CLASS_DIFFERENTIAL) keep |= 1u << i;
    }
    return keep;
  }
  /* Packet mode: a datagram that is all differential video is one unit. */
  for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
    if (i >= n) break;
    if (!v[i].valid || v[i].klass != EF_CLASS_DIFFERENTIAL) return all;
  }
  if (n == 0) return 0;
  return ef_credit_keep(p, c) ? all : 0;
}

/* What one consumer was sent and spared, counted the same way in the kernel (per CPU, summed by
 * the loader) and in userspace. TS packets by class; their bytes are EF_TS_PACKET_BYTES each, so
 * they are not counted twice (the kernel writes one consumer's counters per copy, and every cache
 * line it touches there costs at the stream's real rate). payload_bytes_sent is the UDP payload
 * of the datagrams sent, null packets and uninspected datagrams included. The fields a copy
 * writes come first. */
struct ef_consumer_counters {
  __u64 sent_packets[EF_CLASS_COUNT]; /* TS packets, by class; invalid ones count as OTHER */
  __u64 dropped_packets[EF_CLASS_COUNT];
  __u64 datagrams_sent;
  __u64 payload_bytes_sent;
  __u64 datagrams_dropped;     /* decided away whole */
  __u64 uninspected_datagrams; /* of those sent: not TS, forwarded whole */
  __u64 send_errors;           /* the copy could not be handed to its interface */
};

/* Counts the decision `mask` (ef_decide_datagram's) over an inspected datagram of n TS packets. */
EF_INLINE void ef_count_decision(struct ef_consumer_counters* c, const struct ef_ts_verdict* v,
                                 __u32 n, __u32 mask) {
  for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
    if (i >= n) break;
    __u32 klass = v[i].valid ? v[i].klass : (__u32)EF_CLASS_OTHER;
    if (klass >= EF_CLASS_COUNT) klass = EF_CLASS_OTHER;
    if (mask & (1u << i)) {
      c->sent_packets[klass]++;
    } else {
      c->dropped_packets[klass]++;
    }
  }
  if (mask == 0) {
    c->datagrams_dropped++;
  } else {
    c->datagrams_sent++;
    c->payload_bytes_sent += (__u64)n * EF_TS_PACKET_BYTES;
  }
}

/* Counts a datagram that was not inspected and goes whole. */
EF_INLINE void ef_count_uninspected(struct ef_consumer_counters* c, __u64 payload_bytes) {
  c->datagrams_sent++;
  c->uninspected_datagrams++;
  c->payload_bytes_sent += payload_bytes;
}

/* The 4-byte header that turns a TS packet into a null packet (PID 0x1FFF, payload only), which
 * every demuxer skips: what a consumer gets in place of a TS packet it does not get but that
 * shares its datagram with ones it does. The rest of the packet is left as it was. */
#define EF_NULL_TS_HEADER_0 0x47
#define EF_NULL_TS_HEADER_1 0x1F
#define EF_NULL_TS_HEADER_2 0xFF
#define EF_NULL_TS_HEADER_3 0x10

#endif /* EDGEFLOW_FANOUT_BPF_DROP_POLICY_H_ */
