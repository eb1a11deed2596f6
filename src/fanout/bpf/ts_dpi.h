/* Deep packet inspection of MPEG-TS in UDP datagrams, shared by the tc eBPF program and the
 * userspace replicator so that both make exactly the same decisions on the same bytes.
 *
 * Written in the subset of C that the BPF verifier accepts: no libc, every loop bounded by a
 * constant, every byte read through an index checked against the packet's 188 bytes. The caller
 * hands over one TS packet at a time in a 188-byte buffer (the eBPF program copies it out of the
 * skb with bpf_skb_load_bytes; userspace points into the datagram).
 *
 * What it decides, per TS packet: the class of the picture the packet belongs to. The video PID
 * is learned from the stream itself (the PID whose PES packets carry a video stream_id,
 * 0xE0..0xEF), so no PAT/PMT parsing is needed in the kernel. At each picture start (PES start
 * on the video PID) the NAL units after the PES header are read, within that TS packet, up to
 * the picture's first slice: H.264 IDR or I/SI slice -> reference, P/SP/B -> differential (with
 * nal_ref_idc saying whether other pictures reference it); H.265 IRAP -> reference, 0..9 ->
 * differential. When the slice is not in the first TS packet (a long SEI before it), the
 * adaptation field's random_access_indicator and an intra-only access unit delimiter decide
 * reference; failing both, the picture is EF_CLASS_UNKNOWN, which is never dropped. So the class
 * rests on the picture's own NAL units whenever they are in sight, and on a flag only when not.
 *
 * src/ts (TsAnalyzer) is the reference these decisions are tested against.
 */
#ifndef EDGEFLOW_FANOUT_BPF_TS_DPI_H_
#define EDGEFLOW_FANOUT_BPF_TS_DPI_H_

#include <linux/types.h>

#define EF_TS_PACKET_BYTES 188
#define EF_TS_SYNC_BYTE 0x47
#define EF_PID_UNKNOWN 0xFFFF

#ifndef EF_INLINE
#define EF_INLINE static inline __attribute__((always_inline))
#endif

/* Classes of TS packets; the numeric values of the first three are FrameClass's (src/ts). */
enum ef_class {
  EF_CLASS_UNKNOWN = 0,      /* a picture that could not be classified: never dropped */
  EF_CLASS_REFERENCE = 1,    /* a packet of an I / IDR / IRAP picture */
  EF_CLASS_DIFFERENTIAL = 2, /* a packet of a P / B picture */
  EF_CLASS_OTHER = 3,        /* not video: PSI, audio, null packets: never dropped */
  EF_CLASS_COUNT = 4,
};

enum ef_codec {
  EF_CODEC_AUTO = 0, /* told apart by the first NAL unit after the PES header */
  EF_CODEC_H264 = 1,
  EF_CODEC_H265 = 2,
};

/* What the inspection keeps per stream between packets (a map value in the kernel). */
struct ef_stream_state {
  __u64 frame_seq;       /* pictures started so far; the current one is frame_seq - 1 */
  __u16 video_pid;       /* EF_PID_UNKNOWN until the first video PES start */
  __u8 codec;            /* enum ef_codec: configured, or learned (AUTO until then) */
  __u8 frame_class;      /* enum ef_class of the current picture */
  __u8 frame_referenced; /* other pictures may reference the current picture */
  __u8 pad[3];
};

/* The result for one TS packet. */
struct ef_ts_verdict {
  __u8 valid;            /* 0: not a TS packet (no sync byte, or a lying adaptation field) */
  __u8 klass;            /* enum ef_class */
  __u8 frame_start;      /* this packet starts a picture */
  __u8 referenced;       /* the picture may be referenced (meaningful for differential) */
};

EF_INLINE void ef_stream_state_init(struct ef_stream_state *s, __u8 codec) {
  s->frame_seq = 0;
  s->video_pid = EF_PID_UNKNOWN;
  s->codec = codec;
  s->frame_class = EF_CLASS_UNKNOWN;
  s->frame_referenced = 1;
  s->pad[0] = s->pad[1] = s->pad[2] = 0;
}

/* Exp-Golomb ue(v) from b[*pos..limit), bit by bit, skipping emulation-prevention bytes
 * (00 00 03). Returns -1 when the bytes run out or the code is longer than 31 bits. */
struct ef_bit_cursor {
  __u32 pos;   /* byte index of the next byte to load */
  __u32 bit;   /* bits of `cur` consumed, 8 = load the next byte */
  __u32 zeros; /* zero bytes just before pos (for emulation prevention) */
  __u32 cur;
};

EF_INLINE int ef_next_bit(const __u8 *b, __u32 limit, struct ef_bit_cursor *c) {
  if (c->bit >= 8) {
    if (c->zeros >= 2 && c->pos < limit && c->pos < EF_TS_PACKET_BYTES && b[c->pos] == 3) {
      c->pos++;
      c->zeros = 0;
    }
    if (c->pos >= limit || c->pos >= EF_TS_PACKET_BYTES) return -1;
    c->cur = b[c->pos];
    c->pos++;
    c->zeros = c->cur == 0 ? c->zeros + 1 : 0;
    c->bit = 0;
  }
  int value = (int)((c->cur >> (7 - c->bit)) & 1);
  c->bit++;
  return value;
}

EF_INLINE long ef_read_ue(const __u8 *b, __u32 limit, struct ef_bit_cursor *c) {
  __u32 zeros = 0;
  int bit;
  for (int i = 0; i < 32; i++) {
    bit = ef_next_bit(b, limit, c);
    if (bit < 0) return -1;
    if (bit == 1) break;
    zeros++;
  }
  if (zeros > 31) return -1;
  __u64 value = 0;
  for (int i = 0; i < 31; i++) {
    if ((__u32)i >= zeros) break;
    bit = ef_next_bit(b, limit, c);
    if (bit < 0) return -1;
    value = (value << 1) | (__u64)bit;
  }
  return (long)(((__u64)1 << zeros) - 1 + value);
}

/* Classifies the picture whose elementary stream starts at es_start in the TS packet `b` (the
 * rest of the packet is what is at hand). Sets s->frame_class / s->frame_referenced; leaves the
 * class UNKNOWN when no slice and no intra-only delimiter are in sight. */
EF_INLINE void ef_classify_picture(struct ef_stream_state *s, const __u8 *b, __u32 es_start) {
  __u8 intra_delimiter = 0;
  s->frame_class = EF_CLASS_UNKNOWN;
  s->frame_referenced = 1;
  for (__u32 i = es_start; i + 3 < EF_TS_PACKET_BYTES; i++) {
    if (b[i] != 0 || b[i + 1] != 0 || b[i + 2] != 1) continue;
    __u32 nal = i + 3;
    __u8 h0 = b[nal];
    __u8 codec = s->codec;
    if (codec == EF_CODEC_AUTO) {
      /* The first NAL unit of an access unit is normally its delimiter: H.264 type 9 (0x09),
       * H.265 type 35 (0x46 0x01). Anything else leaves the codec to be learned later. */
      if ((h0 & 0x1F) == 9 && (h0 & 0x80) == 0) {
        codec = EF_CODEC_H264;
      } else if (((h0 >> 1) & 0x3F) == 35) {
        codec = EF_CODEC_H265;
      } else {
        return;
      }
      s->codec = codec;
    }
    if (codec == EF_CODEC_H264) {
      __u8 type = h0 & 0x1F;
      if (type == 9) {
        if (nal + 1 < EF_TS_PACKET_BYTES) {
          __u8 primary = b[nal + 1] >> 5;
          if (primary == 0 || primary == 3 || primary == 5) intra_delimiter = 1;
        }
      } else if (type == 1 || type == 2 || type == 5) {
        struct ef_bit_cursor c = {nal + 1, 8, 0, 0};
        long first_mb = ef_read_ue(b, EF_TS_PACKET_BYTES, &c);
        long slice_type = first_mb < 0 ? -1 : ef_read_ue(b, EF_TS_PACKET_BYTES, &c);
        if (type == 5) {
          s->frame_class = EF_CLASS_REFERENCE;
        } else if (slice_type < 0 || slice_type > 9) {
          break; /* cut short or damaged (slice_type is 0..9): decided below from the flags */
        } else {
          long t = slice_type % 5;
          s->frame_class = (t == 2 || t == 4) ? EF_CLASS_REFERENCE : EF_CLASS_DIFFERENTIAL;
        }
        s->frame_referenced = ((h0 >> 5) & 0x3) != 0;
        return;
      }
    } else {
      if (nal + 1 >= EF_TS_PACKET_BYTES) break; /* a NAL unit header is two bytes */
      __u8 type = (h0 >> 1) & 0x3F;
      if (type <= 9) {
        s->frame_class = EF_CLASS_DIFFERENTIAL;
        s->frame_referenced = type % 2 == 1;
        return;
      }
      if (type >= 16 && type <= 23) {
        s->frame_class = EF_CLASS_REFERENCE;
        return;
      }
      if (type == 35 && nal + 2 < EF_TS_PACKET_BYTES && (b[nal + 2] >> 5) == 0) {
        intra_delimiter = 1;
      }
    }
  }
  if (intra_delimiter) s->frame_class = EF_CLASS_REFERENCE;
}

/* Inspects one TS packet (`b`, EF_TS_PACKET_BYTES bytes) of the stream. */
EF_INLINE struct ef_ts_verdict ef_inspect_ts_packet(struct ef_stream_state *s, const __u8 *b) {
  struct ef_ts_verdict v = {0, EF_CLASS_OTHER, 0, 1};
  if (b[0] != EF_TS_SYNC_BYTE) return v;
  __u16 pid = (__u16)(((b[1] & 0x1F) << 8) | b[2]);
  __u8 pusi = (b[1] & 0x40) != 0;
  __u8 afc = (b[3] >> 4) & 0x3;
  if (afc == 0) return v;
  __u32 payload = 4;
  __u8 random_access = 0;
  if (afc & 0x2) {
    __u32 length = b[4];
    if (5 + length > EF_TS_PACKET_BYTES) return v;
    if (length > 0) random_access = (b[5] & 0x40) != 0;
    payload = 5 + length;
  }
  v.valid = 1;
  if (!(afc & 0x1)) payload = EF_TS_PACKET_BYTES; /* adaptation only: no payload */
  /* A video PES starts here: 00 00 01, stream_id 0xE0..0xEF, the optional header's '10' bits. */
  if (pusi && payload + 9 <= EF_TS_PACKET_BYTES && b[payload] == 0 && b[payload + 1] == 0 &&
      b[payload + 2] == 1 && (b[payload + 3] & 0xF0) == 0xE0 && (b[payload + 6] & 0xC0) == 0x80) {
    if (s->video_pid == EF_PID_UNKNOWN) s->video_pid = pid;
    if (pid == s->video_pid) {
      s->frame_seq++;
      __u32 es_start = payload + 9 + b[payload + 8];
      ef_classify_picture(s, b, es_start);
      if (s->frame_class == EF_CLASS_UNKNOWN && random_access) {
        s->frame_class = EF_CLASS_REFERENCE;
      }
      v.frame_start = 1;
    }
  }
  if (pid != s->video_pid) return v; /* EF_CLASS_OTHER */
  /* Video packets before the first picture start belong to no known picture. */
  v.klass = s->frame_seq == 0 ? (__u8)EF_CLASS_UNKNOWN : s->frame_class;
  v.referenced = s->frame_referenced;
  return v;
}

#endif /* EDGEFLOW_FANOUT_BPF_TS_DPI_H_ */
