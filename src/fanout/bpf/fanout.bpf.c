/* The stream fan-out's tc ingress program: replicates a sensor's MPEG-TS/UDP video to the
 * stream's consumers in the kernel, each getting only the part of the differential (P/B) data its
 * policy keeps.
 *
 * For every IPv4/UDP datagram to a registered stream (`streams`: destination address and port):
 *  1. inspect its TS packets (at most EF_MAX_TS_PER_DATAGRAM, each copied out of the skb into a
 *     per-CPU buffer and classified by ts_dpi.h, which keeps the stream's picture state);
 *  2. for each consumer in the stream's list (bpf_loop, so the list's length is a map size, not
 *     a loop bound the verifier has to walk): decide with drop_policy.h what of the datagram it
 *     gets, turn the TS packets it does not get into null packets (4-byte header rewrites,
 *     undone for the next consumer that gets them), rewrite the destination MAC, IP address and
 *     port (with incremental IP and UDP checksum updates), and bpf_clone_redirect the datagram to
 *     the consumer's interface; the last consumer gets the original itself (bpf_redirect), the
 *     others clones;
 *  3. with no consumer to send to, drop the original: it was addressed to the fan-out.
 * Everything else continues up the stack untouched (TC_ACT_OK).
 *
 * A datagram that is not 1..7 whole TS packets goes whole to every consumer (as the userspace
 * replicator does: DatagramDecider), and is counted. One whose UDP or IP lengths do not add up
 * with the frame (a lie, a fragment, GRO-merged datagrams) is not forwarded anywhere; it is
 * counted and left to the stack, which drops it.
 *
 * Ordering: the stream's picture state assumes its datagrams are inspected one at a time, in
 * order, which holds where they arrive (one UDP flow is received on one queue, one CPU at a time).
 * Were two CPUs ever to interleave one stream, the decisions of which pictures to drop would
 * differ from the userspace replicator's, but a copy still only ever goes to the stream's own
 * consumers, with the rules that keep reference pictures intact.
 *
 * Only the uapi headers of linux-libc-dev and libbpf's headers are used, not vmlinux.h: a tc
 * program reads the packet and struct __sk_buff, both stable ABI, so the build does not depend on
 * the build machine's kernel.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>

/* After <linux/bpf.h>: libbpf's helper declarations use its types. */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* ts_dpi.h's slice header reading goes through fanout_h264_slice_type (below). */
struct fanout_scratch;
long fanout_h264_slice_type(const struct fanout_scratch* buffer, __u32 pos);
#define EF_H264_SLICE_TYPE(b, pos) fanout_h264_slice_type((const struct fanout_scratch*)(b), pos)

#include "drop_policy.h"
#include "fanout_maps.h"
#include "ts_dpi.h"

/* The fragment offset and more-fragments bits of iphdr.frag_off (not in the uapi headers). */
#define FANOUT_IP_OFFSET 0x1fff
#define FANOUT_IP_MF 0x2000

/* What ts_dpi.h's inspection reads of a TS packet without payload_unit_start_indicator: the
 * 4-byte header, the adaptation field's length and its flags. */
#define FANOUT_TS_SHORT_READ 6

/* Ethernet + the longest IPv4 header + UDP: what has to be in the skb's linear data. */
#define FANOUT_MAX_HEADERS (14 + 60 + 8)

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, struct fanout_stream_key);
  __type(value, struct fanout_stream);
} streams SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, __u32);
  __type(value, struct fanout_stream_config);
} stream_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, __u32);
  __type(value, struct ef_stream_state);
} stream_state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, __u32);
  __type(value, struct fanout_stream_counters);
} stream_counters SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FANOUT_MAX_STREAMS* FANOUT_MAX_CONSUMERS_PER_STREAM);
  __type(key, __u32);
  __type(value, __u32);
} stream_consumers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FANOUT_MAX_CONSUMERS);
  __type(key, __u32);
  __type(value, struct fanout_consumer);
} consumers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FANOUT_MAX_CONSUMERS);
  __type(key, __u32);
  __type(value, struct ef_consumer_state);
} consumer_state SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FANOUT_MAX_CONSUMERS);
  __type(key, __u32);
  __type(value, struct ef_consumer_counters);
} consumer_counters SEC(".maps");

/* One TS packet copied out of the skb, and what the inspection said about the datagram's packets.
 * Per CPU: the program is not re-entered on a CPU while it runs (copies it redirects are received
 * later, from the backlog). */
struct fanout_scratch {
  __u8 ts[EF_TS_BUFFER_BYTES]; /* one TS packet, in the first EF_TS_PACKET_BYTES (ts_dpi.h) */
  __u32 headers[EF_MAX_TS_PER_DATAGRAM]; /* the TS packets' original 4-byte headers */
  struct ef_ts_verdict verdicts[EF_MAX_TS_PER_DATAGRAM];
  /* The datagram's TS packets by class (invalid ones as OTHER): what a consumer that gets the
   * whole datagram, the usual case, is counted for. */
  __u32 class_packets[EF_CLASS_COUNT];
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct fanout_scratch);
} scratch SEC(".maps");

/* What the consumer loop needs, and what the skb currently holds (each consumer's rewrites are
 * applied over the previous consumer's, changing only what differs). */
struct fanout_pass {
  struct __sk_buff* skb;
  struct fanout_scratch* scratch;
  __u32 stream_id;
  __u32 packets;     /* TS packets inspected; 0: the datagram goes whole (uninspected) */
  __u32 payload_len; /* UDP payload bytes */
  __u32 payload_off; /* offsets from the Ethernet header */
  __u32 ip_off;
  __u32 udp_off;
  __u32 nulled; /* TS packets currently rewritten as null packets (bit i = packet i) */
  __u32 daddr;  /* the destination currently in the skb, network byte order */
  __u16 dport;
  __u16 pad;
  /* The consumer the skb is prepared for and that has not been sent its copy yet: it is sent
   * when the next consumer needs the skb, or, the last one, gets the original itself
   * (bpf_redirect), which saves a clone per datagram. */
  __u32 pending_slot_plus_one;
  __u32 pending_ifindex;
  __u32 pending_flags;
};

/* ts_dpi.h's H.264 slice_type reading, as a global function checked once; `buffer` is the
 * scratch TS packet (its first member), from which the reading never goes past 188 bytes. */
__noinline long fanout_h264_slice_type(const struct fanout_scratch* buffer, __u32 pos) {
  if (!buffer) return -1;
  return ef_h264_slice_type(buffer->ts, pos);
}

/* Classifies one TS packet. A global function, so the verifier checks the inspection (the
 * largest part of the program, loops within loops) once, not once per datagram packet it could
 * be called for. Returns the verdict packed: valid | klass << 8 | frame_start << 16 |
 * referenced << 24. */
__noinline int fanout_inspect(struct ef_stream_state* state, struct fanout_scratch* buffer) {
  if (!state || !buffer) return 0;
  struct ef_ts_verdict v = ef_inspect_ts_packet(state, buffer->ts);
  return (int)((__u32)v.valid | (__u32)v.klass << 8 | (__u32)v.frame_start << 16 |
               (__u32)v.referenced << 24);
}

/* The consumer loop's steps below are global functions, each checked by the verifier once, on
 * its own: inlined into the loop's body, the combinations of their branches over seven TS packets
 * are more paths than the verifier will walk. Pointer arguments may be NULL as far as the
 * verifier knows, hence the checks. */

/* The TS packets of the datagram that consumer `c` gets (ef_decide_datagram's mask). */
__noinline int fanout_decide(const struct fanout_consumer* c, struct ef_consumer_state* state,
                             const struct fanout_scratch* s, __u32 packets) {
  if (!c || !state || !s) return 0;
  return (int)ef_decide_datagram(&c->policies[c->policy_index & 1], state, s->verdicts, packets);
}

/* Counts the decision. Not part of fanout_decide: there the mask is a value the verifier knows
 * bit by bit on each path, and counting by its bits would multiply those paths; passed in, it is
 * one unknown value. */
__noinline int fanout_count(struct ef_consumer_counters* counters, const struct fanout_scratch* s,
                            __u32 packets, __u32 mask) {
  if (!counters || !s) return 0;
  if (packets <= EF_MAX_TS_PER_DATAGRAM && mask == (1u << packets) - 1) {
    /* The whole datagram: what ef_count_decision counts, from the classes counted once. */
    for (__u32 k = 0; k < EF_CLASS_COUNT; k++) counters->sent_packets[k] += s->class_packets[k];
    counters->datagrams_sent++;
    counters->payload_bytes_sent += (__u64)packets * EF_TS_PACKET_BYTES;
    return 0;
  }
  ef_count_decision(counters, s->verdicts, packets, mask);
  return 0;
}

/* Makes TS packets of the skb null packets, or restores them, so that exactly those not in the
 * mask are null. `packed` is packets | nulled << 8 | mask << 16, where nulled says which are
 * null now (a BPF function has at most five arguments). The UDP checksum follows each 4-byte
 * change (none when the sender used none: BPF_F_MARK_MANGLED_0). Returns which are null
 * afterwards, or a negative errno from a helper. */
__noinline int fanout_apply_mask(struct __sk_buff* skb, const struct fanout_scratch* s,
                                 __u32 udp_off, __u32 packed) {
  if (!s) return -1;
  const __u32 packets = packed & 0xFF;
  __u32 nulled = (packed >> 8) & 0xFF;
  const __u32 mask = (packed >> 16) & 0xFF;
  /* The usual case: the whole datagram goes and nothing is null. */
  if (nulled == 0 && mask == (1u << packets) - 1) return 0;
  const __u32 null_header = (__u32)EF_NULL_TS_HEADER_0 | (__u32)EF_NULL_TS_HEADER_1 << 8 |
                            (__u32)EF_NULL_TS_HEADER_2 << 16 | (__u32)EF_NULL_TS_HEADER_3 << 24;
  for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
    if (i >= packets) break;
    __u32 bit = 1u << i;
    __u32 want_null = (mask & bit) ? 0 : bit;
    if ((nulled & bit) == want_null) continue;
    __u32 from = want_null ? s->headers[i] : null_header;
    __u32 to = want_null ? null_header : s->headers[i];
    __s64 diff = bpf_csum_diff(&from, sizeof(from), &to, sizeof(to), 0);
    if (diff < 0) return (int)diff;
    long err = bpf_skb_store_bytes(skb, udp_off + 8 + i * EF_TS_PACKET_BYTES, &to, sizeof(to), 0);
    if (err) return (int)err;
    err = bpf_l4_csum_replace(skb, udp_off + 6, 0, diff, BPF_F_MARK_MANGLED_0);
    if (err) return (int)err;
    nulled ^= bit;
  }
  return (int)nulled;
}

/* RFC 1624's incremental update of a 16-bit one's complement checksum for a 32-bit field that
 * changes from `from` to `to`. Byte order does not matter as long as all three are read from the
 * packet the same way: a one's complement sum of byte-swapped words is the byte-swapped sum. */
static __always_inline __u16 fanout_csum_replace4(__u16 check, __u32 from, __u32 to) {
  __u32 sum = (__u16)~check;
  sum += (__u16)~(from & 0xFFFF);
  sum += (__u16)~(from >> 16);
  sum += to & 0xFFFF;
  sum += to >> 16;
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return (__u16)~sum;
}

/* Points the skb at consumer `c`: Ethernet addresses, IPv4 destination, UDP destination port,
 * with the IP header checksum and the UDP checksum (pseudo-header included) updated.
 *
 * The headers are written in place: bpf_clone_redirect leaves the skb's head private (it copies
 * it for the clone's sake), and the verifier makes it private at the program's start, so direct
 * writes need no helper each. The IP header checksum is plain arithmetic. The UDP checksum goes
 * through bpf_l4_csum_replace, which alone knows how the skb carries it (complete, or partial
 * with only the pseudo-header summed, when the sender left it to offload); a datagram sent
 * without one (0) keeps none. Returns 0, or nonzero if the headers are not where the pass saw
 * them or a helper failed. */
static __always_inline long fanout_retarget(struct fanout_pass* pass,
                                            const struct fanout_consumer* c) {
  struct __sk_buff* skb = pass->skb;
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;
  /* An IPv4 header is 20..60 bytes: the mask only tells the verifier so. */
  const __u32 udp_off = pass->udp_off & 0x7F;
  struct iphdr* ip = data + sizeof(struct ethhdr);
  if ((void*)(ip + 1) > data_end) return -1;
  struct udphdr* udp = data + udp_off;
  if ((void*)(udp + 1) > data_end) return -1;

  /* dmac and smac are adjacent in both: the Ethernet header's first 12 bytes. */
  *(__u64*)data = *(const __u64*)c->dmac;
  *(__u32*)(data + 8) = *(const __u32*)(c->dmac + 8);

  const __u32 old_daddr = pass->daddr;
  const __u32 daddr = c->daddr;
  const __u16 old_dport = pass->dport;
  const __u16 dport = c->dport;
  const int udp_checksummed = udp->check != 0;
  if (daddr != old_daddr) {
    ip->check = fanout_csum_replace4(ip->check, old_daddr, daddr);
    ip->daddr = daddr;
    pass->daddr = daddr;
  }
  if (dport != old_dport) {
    udp->dest = dport;
    pass->dport = dport;
  }
  /* The helpers change the skb: the packet pointers above are not used past this point. */
  if (!udp_checksummed) return 0;
  if (daddr != old_daddr) {
    long err = bpf_l4_csum_replace(skb, udp_off + 6, old_daddr, daddr,
                                   BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(daddr));
    if (err) return err;
  }
  if (dport != old_dport) {
    long err = bpf_l4_csum_replace(skb, udp_off + 6, old_dport, dport,
                                   BPF_F_MARK_MANGLED_0 | sizeof(dport));
    if (err) return err;
  }
  return 0;
}

/* Sends the consumer the skb is prepared for its copy, if there is one. */
static __always_inline void fanout_send_pending(struct fanout_pass* pass) {
  if (pass->pending_slot_plus_one == 0) return;
  if (bpf_clone_redirect(pass->skb, pass->pending_ifindex, pass->pending_flags) != 0) {
    __u32 slot = pass->pending_slot_plus_one - 1;
    struct ef_consumer_counters* counters = bpf_map_lookup_elem(&consumer_counters, &slot);
    if (counters) counters->send_errors++;
  }
  pass->pending_slot_plus_one = 0;
}

/* bpf_loop's body: entry `index` of the stream's consumer list. Returns 0 to go on, 1 to stop. */
static long fanout_serve_consumer(__u64 index, void* data) {
  struct fanout_pass* pass = data;
  __u32 entry = pass->stream_id * FANOUT_MAX_CONSUMERS_PER_STREAM + (__u32)index;
  __u32* slot_plus_one = bpf_map_lookup_elem(&stream_consumers, &entry);
  if (!slot_plus_one || *slot_plus_one == 0) return 0;
  __u32 slot = *slot_plus_one - 1;
  struct fanout_consumer* c = bpf_map_lookup_elem(&consumers, &slot);
  if (!c || !c->active || c->stream_id != pass->stream_id) return 0;
  struct ef_consumer_state* state = bpf_map_lookup_elem(&consumer_state, &slot);
  struct ef_consumer_counters* counters = bpf_map_lookup_elem(&consumer_counters, &slot);
  if (!state || !counters) return 0;

  __u32 mask = 1;
  if (pass->packets == 0) {
    ef_count_uninspected(counters, pass->payload_len);
  } else {
    mask = (__u32)fanout_decide(c, state, pass->scratch, pass->packets) & 0x7F;
    fanout_count(counters, pass->scratch, pass->packets, mask);
    if (mask == 0) return 0;
  }
  /* The skb is about to be changed for this consumer: the one it was prepared for goes first. */
  fanout_send_pending(pass);
  /* The usual case, the whole datagram with nothing null, needs no call. */
  if (pass->packets != 0 && !(pass->nulled == 0 && mask == (1u << pass->packets) - 1)) {
    int nulled = fanout_apply_mask(pass->skb, pass->scratch, pass->udp_off,
                                   pass->packets | pass->nulled << 8 | mask << 16);
    if (nulled < 0) {
      /* The skb is now in a state this pass no longer knows: the rest of the consumers would get
       * copies of it, so they get nothing (a helper fails only when memory does). */
      counters->send_errors++;
      return 1;
    }
    pass->nulled = (__u32)nulled;
  }
  if (fanout_retarget(pass, c) != 0) {
    counters->send_errors++;
    return 1; /* as above */
  }
  pass->pending_slot_plus_one = slot + 1;
  pass->pending_ifindex = c->ifindex;
  pass->pending_flags = (c->flags & FANOUT_CONSUMER_INGRESS) ? BPF_F_INGRESS : 0;
  return 0;
}

SEC("tc")
int fanout_ingress(struct __sk_buff* skb) {
  /* The headers must be in the linear data to be read directly; pulling fails (harmlessly) on a
   * frame shorter than the longest header, whose headers then get checked below as they are. */
  if ((long)skb->data + FANOUT_MAX_HEADERS > (long)skb->data_end) {
    bpf_skb_pull_data(skb, FANOUT_MAX_HEADERS);
  }
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return TC_ACT_OK;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;

  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end) return TC_ACT_OK;
  if (ip->version != 4 || ip->protocol != IPPROTO_UDP) return TC_ACT_OK;
  /* The UDP header follows the IPv4 options, if any: IHL counts 32-bit words (5..15). */
  __u32 ip_len = ip->ihl * 4;
  if (ip_len < sizeof(*ip)) return TC_ACT_OK;
  /* Only the first fragment of a datagram carries the UDP header. */
  if (ip->frag_off & bpf_htons(FANOUT_IP_OFFSET)) return TC_ACT_OK;
  struct udphdr* udp = (void*)ip + ip_len;
  if ((void*)(udp + 1) > data_end) return TC_ACT_OK;

  struct fanout_stream_key key = {.daddr = ip->daddr, .dport = udp->dest, .pad = 0};
  struct fanout_stream* stream = bpf_map_lookup_elem(&streams, &key);
  if (!stream) return TC_ACT_OK;

  __u32 id = stream->id;
  /* NULL for an id beyond the arrays (the loader does not register one). */
  struct fanout_stream_counters* counters = bpf_map_lookup_elem(&stream_counters, &id);
  struct fanout_stream_config* config = bpf_map_lookup_elem(&stream_config, &id);
  struct ef_stream_state* state = bpf_map_lookup_elem(&stream_state, &id);
  __u32 zero = 0;
  struct fanout_scratch* s = bpf_map_lookup_elem(&scratch, &zero);
  if (!counters || !config || !state || !s) return TC_ACT_OK;
  counters->packets += 1;
  counters->bytes += skb->len;

  struct fanout_pass pass = {
      .skb = skb,
      .scratch = s,
      .stream_id = id,
      .ip_off = sizeof(*eth),
      .udp_off = sizeof(*eth) + ip_len,
      .payload_off = sizeof(*eth) + ip_len + sizeof(*udp),
      .daddr = ip->daddr,
      .dport = udp->dest,
  };
  /* Only whole, unfragmented datagrams, one per skb: not a first fragment (more follow), the UDP
   * length within the IP length, which must fit in the frame (Ethernet may pad a short frame;
   * nothing may be missing). */
  __u32 udp_len = bpf_ntohs(udp->len);
  __u32 ip_total = bpf_ntohs(ip->tot_len);
  if ((ip->frag_off & bpf_htons(FANOUT_IP_MF)) || udp_len < sizeof(*udp) ||
      ip_len + udp_len > ip_total || sizeof(*eth) + ip_total > skb->len || skb->gso_segs > 1) {
    counters->malformed += 1;
    return TC_ACT_OK;
  }
  pass.payload_len = udp_len - sizeof(*udp);

  __u32 packets = pass.payload_len / EF_TS_PACKET_BYTES;
  if (pass.payload_len == 0 || pass.payload_len % EF_TS_PACKET_BYTES != 0 ||
      packets > EF_MAX_TS_PER_DATAGRAM) {
    counters->uninspected += 1;
  } else {
    for (__u32 k = 0; k < EF_CLASS_COUNT; k++) s->class_packets[k] = 0;
    for (__u32 i = 0; i < EF_MAX_TS_PER_DATAGRAM; i++) {
      if (i >= packets) break;
      /* The inspection reads only the header and the adaptation field's flags (6 bytes) of a
       * packet that starts no PES: the rest is copied only when one does. */
      const __u32 offset = pass.payload_off + i * EF_TS_PACKET_BYTES;
      if (bpf_skb_load_bytes(skb, offset, s->ts, FANOUT_TS_SHORT_READ) != 0 ||
          ((s->ts[1] & 0x40) &&
           bpf_skb_load_bytes(skb, offset + FANOUT_TS_SHORT_READ, s->ts + FANOUT_TS_SHORT_READ,
                              EF_TS_PACKET_BYTES - FANOUT_TS_SHORT_READ) != 0)) {
        counters->malformed += 1;
        return TC_ACT_OK;
      }
      __u32 packed = (__u32)fanout_inspect(state, s);
      struct ef_ts_verdict v = {
          .valid = packed & 0xFF,
          .klass = (packed >> 8) & 0xFF,
          .frame_start = (packed >> 16) & 0xFF,
          .referenced = packed >> 24,
      };
      s->verdicts[i] = v;
      __builtin_memcpy(&s->headers[i], s->ts, sizeof(s->headers[i]));
      __u32 klass = v.valid ? v.klass : (__u32)EF_CLASS_OTHER;
      if (klass >= EF_CLASS_COUNT) klass = EF_CLASS_OTHER;
      counters->ts_packets[klass] += 1;
      s->class_packets[klass] += 1;
      if (!v.valid) counters->invalid_ts += 1;
    }
    pass.packets = packets;
  }

  __u32 slots = config->consumer_slots;
  if (slots > FANOUT_MAX_CONSUMERS_PER_STREAM) slots = FANOUT_MAX_CONSUMERS_PER_STREAM;
  bpf_loop(slots, fanout_serve_consumer, &pass, 0);
  /* The last consumer gets the original: the datagram was addressed to the fan-out. With no
   * consumer to send to, it goes no further. */
  if (pass.pending_slot_plus_one == 0) return TC_ACT_SHOT;
  return (int)bpf_redirect(pass.pending_ifindex, pass.pending_flags);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
