/* The stream fan-out's tc ingress program. For now it recognises the registered MPEG-TS/UDP
 * streams (the `streams` map, filled by the loader) and counts their packets and bytes; every
 * packet, counted or not, continues up the stack (TC_ACT_OK). Replicating a stream's packets to
 * its consumers builds on this.
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

#include "fanout_maps.h"

/* The fragment offset bits of iphdr.frag_off; the kernel's IP_OFFSET is not in the uapi headers. */
#define FANOUT_IP_OFFSET 0x1fff

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, struct fanout_stream_key);
  __type(value, struct fanout_stream);
} streams SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FANOUT_MAX_STREAMS);
  __type(key, __u32);
  __type(value, struct fanout_counters);
} stream_counters SEC(".maps");

/* Every header is read from the skb's linear data only after checking that it ends before
 * data_end: the verifier refuses the program otherwise. A packet whose headers are not all in the
 * linear data (or that is short or malformed) is simply not counted.
 */
SEC("tc")
int fanout_ingress(struct __sk_buff* skb) {
  void* data = (void*)(long)skb->data;
  void* data_end = (void*)(long)skb->data_end;

  struct ethhdr* eth = data;
  if ((void*)(eth + 1) > data_end) return TC_ACT_OK;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return TC_ACT_OK;

  struct iphdr* ip = (void*)(eth + 1);
  if ((void*)(ip + 1) > data_end) return TC_ACT_OK;
  if (ip->version != 4 || ip->protocol != IPPROTO_UDP) return TC_ACT_OK;
  /* Only the first fragment of a datagram carries the UDP header. */
  if (ip->frag_off & bpf_htons(FANOUT_IP_OFFSET)) return TC_ACT_OK;
  /* The UDP header follows the IPv4 options, if any: IHL counts 32-bit words (5..15). */
  __u32 ip_len = ip->ihl * 4;
  if (ip_len < sizeof(*ip)) return TC_ACT_OK;
  struct udphdr* udp = (void*)ip + ip_len;
  if ((void*)(udp + 1) > data_end) return TC_ACT_OK;

  struct fanout_stream_key key = {.daddr = ip->daddr, .dport = udp->dest, .pad = 0};
  struct fanout_stream* stream = bpf_map_lookup_elem(&streams, &key);
  if (!stream) return TC_ACT_OK;

  __u32 id = stream->id;
  /* NULL for an id beyond the array (the loader does not register one). */
  struct fanout_counters* counters = bpf_map_lookup_elem(&stream_counters, &id);
  if (!counters) return TC_ACT_OK;
  counters->packets += 1;
  counters->bytes += skb->len;
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
