/* Deep packet inspection of MPEG-TS in UDP datagrams, shared by the tc eBPF program and the
 * userspace replicator so that both make exactly the same decisions on the same bytes.
 *
 * Written in the subset of C that the BPF verifier accepts: no libc, every loop bounded by a
 * constant (or, in the kernel, run by bpf_loop), every byte read through an index checked
 * against the packet's 188 bytes. The caller
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
#ifdef __bpf__
#include <linux/bpf.h>
/* After <linux/bpf.h>: libbpf's helper declarations use its types. */
#include <bpf/bpf_helpers.h> /* bpf_loop */
#endif

#define EF_TS_PACKET_BYTES 188
#define EF_TS_SYNC_BYTE 0x47
#define EF_PID_UNKNOWN 0xFFFF

#ifndef EF_INLINE
#define EF_INLINE static inline __attribute__((always_inline))
#endif

/* Reads byte i (< EF_TS_PACKET_BYTES, which every caller has checked) of a TS packet buffer.
 * In the kernel the buffer is EF_TS_BUFFER_BYTES long and the index is masked to 8 bits: clang
 * keeps the checked index and the one it loads through in different registers, and the verifier,
 * which tracks bounds per register, would refuse the load. The empty asm makes the compiler forget
 * the bound, so that it cannot drop the mask as redundant. In userspace the bytes are read as
 * they are. */
#define EF_TS_BUFFER_BYTES 256
#ifdef __bpf__
EF_INLINE __u8 ef_ts_byte(const __u8* b, __u32 i) {
  asm volatile("" : "+r"(i));
  return b[i & (EF_TS_BUFFER_BYTES - 1)];
}
#else
EF_INLINE __u8 ef_ts_byte(const __u8* b, __u32 i) { return b[i]; }
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
  __u8 valid;       /* 0: not a TS packet (no sync byte, or a lying adaptation field) */
  __u8 klass;       /* enum ef_class */
  __u8 frame_start; /* this packet starts a picture */
  __u8 referenced;  /* the picture may be referenced (meaningful for differential) */
};

EF_INLINE void ef_stream_state_init(struct ef_stream_state* s, __u8 codec) {
  s->frame_seq = 0;
  s->video_pid = EF_PID_UNKNOWN;
  s->codec = codec;
  s->frame_class = EF_CLASS_UNKNOWN;
  s->frame_referenced = 1;
  s->pad[0] = s->pad[1] = s->pad[2] = 0;
}

/* The first bytes of a NAL unit's payload (from b[pos]) as one 64-bit word, most significant bit
 * first, without the emulation-prevention bytes (the 03 of 00 00 03). Returns how many bits the
 * word holds (0..64): fewer when the TS packet ends first.
 *
 * A word rather than a bit-by-bit reader because the verifier walks every path of a loop within
 * a loop, and bit-by-bit Exp-Golomb reading is such a loop; 64 bits are enough for what is read
 * from it: a slice's first_mb_in_slice (at most 139,264 macroblocks in a level 6.2 picture: a
 * 35-bit code) followed by its slice_type (at most 7 bits). */
EF_INLINE __u32 ef_rbsp_word(const __u8* b, __u32 pos, __u64* word) {
  __u32 bits = 0;
  __u32 zeros = 0;
  *word = 0;
  /* Eight bytes and at most four emulation-prevention bytes among them. */
  for (int k = 0; k < 12; k++) {
    if (bits >= 64 || pos >= EF_TS_PACKET_BYTES) break;
    __u8 byte = ef_ts_byte(b, pos);
    pos++;
    if (zeros >= 2 && byte == 3) {
      zeros = 0;
      continue;
    }
    zeros = byte == 0 ? zeros + 1 : 0;
    *word = (*word << 8) | byte;
    bits += 8;
  }
  if (bits > 0 && bits < 64) *word <<= 64 - bits; /* left-aligned (0 bits: the word is 0) */
  return bits;
}

/* Leading zero bits of x, which is not 0. Without a branch: the verifier follows each branch on
 * a value it can tell apart, and a branchy count would multiply the paths it walks by 64 per
 * Exp-Golomb code (BPF has no count-leading-zeros instruction). The highest set bit is isolated,
 * and a de Bruijn multiplication maps each power of two to a distinct 6-bit index of this table,
 * which gives the bit's position. */
#define EF_DE_BRUIJN_64 0x022FDD63CC95386DULL
static const __u8 ef_power_of_two_bit[64] = {
    0,  1,  2,  53, 3,  7,  54, 27, 4,  38, 41, 8,  34, 55, 48, 28, 62, 5,  39, 46, 44, 42,
    22, 9,  24, 35, 59, 56, 49, 18, 29, 11, 63, 52, 6,  26, 37, 40, 33, 47, 61, 45, 43, 21,
    23, 58, 17, 10, 51, 25, 36, 32, 60, 20, 57, 16, 50, 31, 19, 15, 30, 14, 13, 12};

EF_INLINE __u32 ef_leading_zeros(__u64 x) {
  x |= x >> 1;
  x |= x >> 2;
  x |= x >> 4;
  x |= x >> 8;
  x |= x >> 16;
  x |= x >> 32;
  __u64 highest = x ^ (x >> 1);
  return 63 - ef_power_of_two_bit[(highest * EF_DE_BRUIJN_64) >> 58];
}

/* Exp-Golomb ue(v) at bit *used of a word of `bits` bits (ef_rbsp_word's); advances *used.
 * Returns -1 when the code runs past the bits or has more than 31 leading zeros. */
EF_INLINE long ef_read_ue(__u64 word, __u32 bits, __u32* used) {
  if (*used >= 64) return -1;
  __u64 x = word << *used;
  if (x == 0) return -1;
  __u32 zeros = ef_leading_zeros(x);
  if (zeros > 31) return -1;
  __u32 length = 2 * zeros + 1; /* the zeros, the 1, as many bits of value */
  if (*used + length > bits) return -1;
  *used += length;
  return (long)((x >> (64 - length)) - 1); /* 1xxx (the code without its zeros) - 1 */
}

/* The slice_type of an H.264 slice whose header starts at b[pos] (after the NAL unit header):
 * first_mb_in_slice and slice_type are its first two fields. -1 when they are cut short. */
EF_INLINE long ef_h264_slice_type(const __u8* b, __u32 pos) {
  __u64 word;
  __u32 bits = ef_rbsp_word(b, pos, &word);
  __u32 used = 0;
  long first_mb = ef_read_ue(word, bits, &used);
  return first_mb < 0 ? -1 : ef_read_ue(word, bits, &used);
}

/* The eBPF program defines this to call ef_h264_slice_type through a global function, which the
 * verifier checks once on its own instead of once for every way the NAL unit search reaches it
 * (the reading loop is most of the verifier's work). */
#ifndef EF_H264_SLICE_TYPE
#define EF_H264_SLICE_TYPE(b, pos) ef_h264_slice_type(b, pos)
#endif

/* The search for a picture's first slice: what ef_scan_nal_at needs and what it found. */
struct ef_picture_scan {
  const __u8* b;
  struct ef_stream_state* s;
  __u32 es_start;
  __u8 intra_delimiter; /* an access unit delimiter said the picture is intra-only */
  __u8 decided;         /* the class was set from a slice (or the codec is not known yet) */
  __u8 pad[2];
};

/* Looks for a NAL unit start code at es_start + k; returns 1 when the search is over.
 *
 * A loop body of its own because in the kernel the search runs under bpf_loop, so that the
 * verifier checks this body once for any position instead of once per position it could be at:
 * per position it would walk the slice header reading 185 times over. Userspace calls it in a
 * plain loop. */
static long ef_scan_nal_at(__u64 k, void* ctx) {
  struct ef_picture_scan* scan = (struct ef_picture_scan*)ctx;
  const __u8* b = scan->b;
  struct ef_stream_state* s = scan->s;
  __u32 i = scan->es_start + (__u32)k;
  if (i + 3 >= EF_TS_PACKET_BYTES) return 1;
  if (ef_ts_byte(b, i) != 0 || ef_ts_byte(b, i + 1) != 0 || ef_ts_byte(b, i + 2) != 1) return 0;
  __u32 nal = i + 3;
  __u8 h0 = ef_ts_byte(b, nal);
  __u8 codec = s->codec;
  if (codec == EF_CODEC_AUTO) {
    /* The first NAL unit of an access unit is normally its delimiter: H.264 type 9 (0x09),
     * H.265 type 35 (0x46 0x01). Anything else leaves the codec to be learned later. */
    if ((h0 & 0x1F) == 9 && (h0 & 0x80) == 0) {
      codec = EF_CODEC_H264;
    } else if (((h0 >> 1) & 0x3F) == 35) {
      codec = EF_CODEC_H265;
    } else {
      scan->decided = 1;
      return 1;
    }
    s->codec = codec;
  }
  if (codec == EF_CODEC_H264) {
    __u8 type = h0 & 0x1F;
    if (type == 9) {
      if (nal + 1 < EF_TS_PACKET_BYTES) {
        __u8 primary = ef_ts_byte(b, nal + 1) >> 5;
        if (primary == 0 || primary == 3 || primary == 5) scan->intra_delimiter = 1;
      }
    } else if (type == 1 || type == 2 || type == 5) {
      long slice_type = EF_H264_SLICE_TYPE(b, nal + 1);
      if (type == 5) {
        s->frame_class = EF_CLASS_REFERENCE;
      } else if (slice_type < 0 || slice_type > 9) {
        return 1; /* cut short or damaged (slice_type is 0..9): decided from the flags */
      } else {
        __u32 t = (__u32)slice_type % 5; /* 0..9 here; unsigned: BPF has no signed modulo */
        s->frame_class = (t == 2 || t == 4) ? EF_CLASS_REFERENCE : EF_CLASS_DIFFERENTIAL;
      }
      s->frame_referenced = ((h0 >> 5) & 0x3) != 0;
      scan->decided = 1;
      return 1;
    }
    return 0;
  }
  if (nal + 1 >= EF_TS_PACKET_BYTES) return 1; /* a NAL unit header is two bytes */
  __u8 type = (h0 >> 1) & 0x3F;
  if (type <= 9) {
    s->frame_class = EF_CLASS_DIFFERENTIAL;
    s->frame_referenced = type % 2 == 1;
    scan->decided = 1;
    return 1;
  }
  if (type >= 16 && type <= 23) {
    s->frame_class = EF_CLASS_REFERENCE;
    scan->decided = 1;
    return 1;
  }
  if (type == 35 && nal + 2 < EF_TS_PACKET_BYTES && (ef_ts_byte(b, nal + 2) >> 5) == 0) {
    scan->intra_delimiter = 1;
  }
  return 0;
}

/* Classifies the picture whose elementary stream starts at es_start in the TS packet `b` (the
 * rest of the packet is what is at hand). Sets s->frame_class / s->frame_referenced; leaves the
 * class UNKNOWN when no slice and no intra-only delimiter are in sight. */
EF_INLINE void ef_classify_picture(struct ef_stream_state* s, const __u8* b, __u32 es_start) {
  s->frame_class = EF_CLASS_UNKNOWN;
  s->frame_referenced = 1;
  if (es_start + 3 >= EF_TS_PACKET_BYTES) return;
  struct ef_picture_scan scan = {b, s, es_start, 0, 0, {0, 0}};
  __u32 positions = EF_TS_PACKET_BYTES - 3 - es_start;
#ifdef __bpf__
  bpf_loop(positions, ef_scan_nal_at, &scan, 0);
#else
  for (__u32 k = 0; k < positions; k++) {
    if (ef_scan_nal_at(k, &scan)) break;
  }
#endif
  if (!scan.decided && scan.intra_delimiter) s->frame_class = EF_CLASS_REFERENCE;
}

/* Inspects one TS packet (`b`, EF_TS_PACKET_BYTES bytes) of the stream. Of a packet without
 * payload_unit_start_indicator it reads bytes 0..5 only, which the kernel program relies on: it
 * copies the rest out of the skb only for packets that have the indicator. */
EF_INLINE struct ef_ts_verdict ef_inspect_ts_packet(struct ef_stream_state* s, const __u8* b) {
  struct ef_ts_verdict v = {0, EF_CLASS_OTHER, 0, 1};
  if (ef_ts_byte(b, 0) != EF_TS_SYNC_BYTE) return v;
  __u16 pid = (__u16)(((ef_ts_byte(b, 1) & 0x1F) << 8) | ef_ts_byte(b, 2));
  __u8 pusi = (ef_ts_byte(b, 1) & 0x40) != 0;
  __u8 afc = (ef_ts_byte(b, 3) >> 4) & 0x3;
  if (afc == 0) return v;
  __u32 payload = 4;
  __u8 random_access = 0;
  if (afc & 0x2) {
    __u32 length = ef_ts_byte(b, 4);
    if (5 + length > EF_TS_PACKET_BYTES) return v;
    if (length > 0) random_access = (ef_ts_byte(b, 5) & 0x40) != 0;
    payload = 5 + length;
  }
  v.valid = 1;
  if (!(afc & 0x1)) payload = EF_TS_PACKET_BYTES; /* adaptation only: no payload */
  /* A video PES starts here: 00 00 01, stream_id 0xE0..0xEF, the optional header's '10' bits. */
  if (pusi && payload + 9 <= EF_TS_PACKET_BYTES && ef_ts_byte(b, payload) == 0 &&
      ef_ts_byte(b, payload + 1) == 0 && ef_ts_byte(b, payload + 2) == 1 &&
      (ef_ts_byte(b, payload + 3) & 0xF0) == 0xE0 && (ef_ts_byte(b, payload + 6) & 0xC0) == 0x80) {
    if (s->video_pid == EF_PID_UNKNOWN) s->video_pid = pid;
    if (pid == s->video_pid) {
      s->frame_seq++;
      __u32 es_start = payload + 9 + ef_ts_byte(b, payload + 8);
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
