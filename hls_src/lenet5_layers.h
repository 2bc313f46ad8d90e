// The layer templates of the LeNet-5 dataflow pipeline: one per kind, configured by the
// generated structs of lenet5_types.h (C::in_height, C::pe, ...).  Derived sizes are the
// expressions in the *_dims structs; nothing here types a layer size.
//
// Stages, in pipeline order (each one process of the DATAFLOW region in lenet5.cpp):
//   read_pixels    AXI beats -> elements of C::in_par pixels
//   conv_windows   line buffer (kernel + 1 rows) -> one (kh, kw, cin) window per conv output
//   conv_mac       window x kernel (pe x simd MACs a cycle) + bias -> cast -> ReLU -> max-pool
//   dense          input-major: accumulates while its inputs stream in, then emits pe at a time
//   write_results  argmax (first of equal maxima) and the 3 result beats of each image
#pragma once

#include <hls_stream.h>

#include "lenet5.h"

namespace lenet {

template <typename T, int N> struct vec {
    T v[N];
};

// A product whose multiplier is bound to LUTs (Fabric) or to a DSP48 slice.
template <bool Fabric> struct multiply;
template <> struct multiply<true> {
    template <typename A, typename B> static auto run(const A &a, const B &b) -> decltype(a * b) {
#pragma HLS INLINE
        decltype(a * b) p = a * b;
#pragma HLS BIND_OP variable = p op = mul impl = fabric
        return p;
    }
};
template <> struct multiply<false> {
    template <typename A, typename B> static auto run(const A &a, const B &b) -> decltype(a * b) {
#pragma HLS INLINE
        decltype(a * b) p = a * b;
#pragma HLS BIND_OP variable = p op = mul impl = dsp
        return p;
    }
};

// The fixed-point value whose raw bits are the memory word w (the word's low T::width bits).
template <typename T> T from_word(word_t w) {
#pragma HLS INLINE
    T x;
#ifdef __SYNTHESIS__
    x.range(T::width - 1, 0) = ap_int<16>(w).range(T::width - 1, 0);
#else
    x.setBits(ap_ulong(ap_slong(w)));  // the same bits, without range-reference overhead in g++
#endif
    return x;
}

// Raw bits of a fixed-point value as a sign-extended 16-bit word (the stream's int16).
template <typename T> ap_uint<16> raw_word(const T &x) {
#pragma HLS INLINE
    ap_int<T::width> r;
    r.range(T::width - 1, 0) = x.range(T::width - 1, 0);
    ap_int<16> w = r;
    return w;
}

// ------------------------------------------------------------------------------ convolution
template <class C> struct conv_dims {
    static constexpr int conv_height = C::in_height - C::kernel + 1;
    static constexpr int conv_width = C::in_width - C::kernel + 1;
    static constexpr int out_height = conv_height / C::pool;
    static constexpr int out_width = conv_width / C::pool;
    static constexpr int taps = C::kernel * C::kernel * C::in_channels;  // Keras (kh, kw, cin) order
    static constexpr int neuron_fold = C::filters / C::pe;               // cycles over output channels
    static constexpr int synapse_fold = taps / C::simd;                  // cycles over the window
    static constexpr int elem = C::in_par * C::in_channels;              // values per input element
    static constexpr int row_words = C::in_width / C::in_par;            // input elements per row
    static constexpr int slots = C::kernel + 1;                          // rows r..r+K-1 read, r+K filled
    static_assert(conv_height % C::pool == 0 && conv_width % C::pool == 0, "pool must tile the conv output");
    static_assert(C::filters % C::pe == 0 && taps % C::simd == 0, "folds must divide evenly");
    static_assert(C::in_width % C::in_par == 0, "input elements must tile a row");
    typedef vec<typename C::in_t, elem> in_elem;
    typedef vec<typename C::in_t, taps> window;
    typedef vec<typename C::out_t, C::filters> out_elem;
    typedef word_t kernel_mem[neuron_fold][synapse_fold][C::pe][C::simd];  // raw C::kernel_t words
    typedef word_t bias_mem[neuron_fold][C::pe];  // raw C::bias_t words
};

template <class C, class D = conv_dims<C>>
void ingest_word(hls::stream<typename D::in_elem> &in, typename C::in_t rows[D::slots][D::row_words][D::elem], int &in_row,
                 int &in_word, int &in_slot) {
#pragma HLS INLINE
    typename D::in_elem e = in.read();
ingest_lanes:
    for (int k = 0; k < D::elem; ++k) {
#pragma HLS UNROLL
        rows[in_slot][in_word][k] = e.v[k];
    }
    if (++in_word == D::row_words) {
        in_word = 0;
        ++in_row;
        in_slot = in_slot + 1 == D::slots ? 0 : in_slot + 1;
    }
}

// Line buffer -> windows.  Per conv row r: make sure rows r..r+K-1 are in (fill_loop, which
// waits only at the first row or when the producer is late), then sweep the row: shift the
// K x K window one column left, bring in column s from the K row slots, and emit from column K-1
// on.  While sweeping, row r+K streams into the free slot whenever the producer has data.
// Cycles per image: conv_height * in_width sweep steps, plus the first K rows' fill.
template <class C>
void conv_windows(hls::stream<typename conv_dims<C>::in_elem> &in, hls::stream<typename conv_dims<C>::window> &out,
                  ap_uint<32> n) {
    typedef conv_dims<C> D;
    typename C::in_t rows[D::slots][D::row_words][D::elem];
#pragma HLS ARRAY_PARTITION variable = rows complete dim = 1
#pragma HLS ARRAY_PARTITION variable = rows complete dim = 3
#pragma HLS DEPENDENCE variable = rows inter false
    typename C::in_t win[C::kernel][C::kernel][C::in_channels];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 0

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
        int in_row = 0, in_word = 0, in_slot = 0;
        int top_slot = 0;  // slot holding input row r
    row_loop:
        for (int r = 0; r < D::conv_height; ++r) {
        fill_loop:
            for (int i = 0; i < C::kernel * D::row_words; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 0 max = C::kernel * D::row_words
                if (in_row >= r + C::kernel) break;
                ingest_word<C>(in, rows, in_row, in_word, in_slot);
            }
        sweep_loop:
            for (int s = 0; s < C::in_width; ++s) {
#pragma HLS PIPELINE II = 1
                if (in_row == r + C::kernel && in_row < C::in_height && !in.empty())
                    ingest_word<C>(in, rows, in_row, in_word, in_slot);
            shift_rows:
                for (int kh = 0; kh < C::kernel; ++kh) {
#pragma HLS UNROLL
                    int slot = top_slot + kh >= D::slots ? top_slot + kh - D::slots : top_slot + kh;
                shift_cols:
                    for (int kw = 0; kw < C::kernel - 1; ++kw) {
#pragma HLS UNROLL
                        for (int c = 0; c < C::in_channels; ++c) win[kh][kw][c] = win[kh][kw + 1][c];
                    }
                new_col:
                    for (int c = 0; c < C::in_channels; ++c) {
#pragma HLS UNROLL
                        win[kh][C::kernel - 1][c] = rows[slot][s / C::in_par][(s % C::in_par) * C::in_channels + c];
                    }
                }
                if (s >= C::kernel - 1) {
                    typename D::window w;
                emit_taps:
                    for (int kh = 0; kh < C::kernel; ++kh)
                        for (int kw = 0; kw < C::kernel; ++kw)
                            for (int c = 0; c < C::in_channels; ++c)
                                w.v[(kh * C::kernel + kw) * C::in_channels + c] = win[kh][kw][c];
                    out.write(w);
                }
            }
            top_slot = top_slot + 1 == D::slots ? 0 : top_slot + 1;
        }
    }
}

// Windows -> pooled pixels.  Each window takes neuron_fold x synapse_fold cycles of pe x simd
// MACs; the accumulator starts at the bias (exact: the accumulator format holds every sum), is
// cast to the output format (its rounding and saturation), ReLU'd, and max-pooled in a buffer of
// one pooled row.  A pooled pixel (all filters) leaves after the last window of its pool tile.
template <class C>
void conv_mac(hls::stream<typename conv_dims<C>::window> &in, hls::stream<typename conv_dims<C>::out_elem> &out,
              const typename conv_dims<C>::kernel_mem &weights, const typename conv_dims<C>::bias_mem &bias, ap_uint<32> n) {
    typedef conv_dims<C> D;
    typedef typename C::accum_t accum_t;
    typedef typename C::out_t out_t;
    typename C::out_t pool_row[D::out_width][C::filters];
#pragma HLS ARRAY_PARTITION variable = pool_row complete dim = 2
    accum_t acc[C::pe];
#pragma HLS ARRAY_PARTITION variable = acc complete
    typename D::window win;
#pragma HLS ARRAY_PARTITION variable = win.v complete

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
    row_loop:
        for (int r = 0; r < D::conv_height; ++r) {
        col_loop:
            for (int x = 0; x < D::conv_width; ++x) {
            neuron_loop:
                for (int nf = 0; nf < D::neuron_fold; ++nf) {
                synapse_loop:
                    for (int sf = 0; sf < D::synapse_fold; ++sf) {
#pragma HLS PIPELINE II = 1
                        if (nf == 0 && sf == 0) win = in.read();
                    pe_loop:
                        for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                            accum_t a = sf == 0 ? accum_t(from_word<typename C::bias_t>(bias[nf][pe])) : acc[pe];
                        simd_loop:
                            for (int s = 0; s < C::simd; ++s) {
#pragma HLS UNROLL
                                a += multiply<C::fabric>::run(win.v[sf * C::simd + s], from_word<typename C::kernel_t>(weights[nf][sf][pe][s]));
                            }
                            acc[pe] = a;
                        }
                        if (sf == D::synapse_fold - 1) {
                            const bool first = r % C::pool == 0 && x % C::pool == 0;
                        pool_loop:
                            for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                                out_t y = acc[pe];
                                if (C::relu && y < 0) y = 0;
                                out_t &m = pool_row[x / C::pool][nf * C::pe + pe];
                                if (first || y > m) m = y;
                            }
                            if (nf == D::neuron_fold - 1 && r % C::pool == C::pool - 1 && x % C::pool == C::pool - 1) {
                                typename D::out_elem o;
                            emit_channels:
                                for (int c = 0; c < C::filters; ++c) o.v[c] = pool_row[x / C::pool][c];
                                out.write(o);
                            }
                        }
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------ dense
template <class C> struct dense_dims {
    static constexpr int in_vectors = C::in_size / C::in_vec;  // input elements per image
    static constexpr int groups = C::in_vec / C::simd;         // simd-wide slices of an element
    static constexpr int synapse_fold = C::in_size / C::simd;
    static constexpr int neuron_fold = C::units / C::pe;       // cycles per input slice
    static_assert(C::in_size % C::in_vec == 0 && C::in_vec % C::simd == 0, "inputs must fold evenly");
    static_assert(C::units % C::pe == 0, "outputs must fold evenly");
    typedef vec<typename C::in_t, C::in_vec> in_elem;
    typedef vec<typename C::out_t, C::pe> out_elem;
    typedef word_t kernel_mem[synapse_fold][neuron_fold][C::simd][C::pe];  // raw C::kernel_t words
    typedef word_t bias_mem[neuron_fold][C::pe];  // raw C::bias_t words
};

// Input-major: every simd-wide slice of the input updates all units, pe a cycle, so the layer
// overlaps its producer and its last output is ready neuron_fold cycles after its last input.
// Cycles per image: in_size / simd * units / pe to accumulate, units / pe to emit.
template <class C>
void dense(hls::stream<typename dense_dims<C>::in_elem> &in, hls::stream<typename dense_dims<C>::out_elem> &out,
           const typename dense_dims<C>::kernel_mem &weights, const typename dense_dims<C>::bias_mem &bias, ap_uint<32> n) {
    typedef dense_dims<C> D;
    typedef typename C::accum_t accum_t;
    accum_t acc[D::neuron_fold][C::pe];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
    typename D::in_elem x;
#pragma HLS ARRAY_PARTITION variable = x.v complete

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
    vector_loop:
        for (int v = 0; v < D::in_vectors; ++v) {
        group_loop:
            for (int g = 0; g < D::groups; ++g) {
            neuron_loop:
                for (int nf = 0; nf < D::neuron_fold; ++nf) {
#pragma HLS PIPELINE II = 1
                    if (g == 0 && nf == 0) x = in.read();
                    const bool first = v == 0 && g == 0;
                pe_loop:
                    for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                        accum_t a = first ? accum_t(from_word<typename C::bias_t>(bias[nf][pe])) : acc[nf][pe];
                    simd_loop:
                        for (int s = 0; s < C::simd; ++s) {
#pragma HLS UNROLL
                            a += multiply<C::fabric>::run(x.v[g * C::simd + s], from_word<typename C::kernel_t>(weights[v * D::groups + g][nf][s][pe]));
                        }
                        acc[nf][pe] = a;
                    }
                }
            }
        }
    emit_loop:
        for (int nf = 0; nf < D::neuron_fold; ++nf) {
#pragma HLS PIPELINE II = 1
            typename D::out_elem o;
            for (int pe = 0; pe < C::pe; ++pe) {
                typename C::out_t y = acc[nf][pe];
                if (C::relu && y < 0) y = 0;
                o.v[pe] = y;
            }
            out.write(o);
        }
    }
}

// ------------------------------------------------------------------------------ stream ends
// AXI beats -> elements of C::in_par pixels (the pixel byte is the input_t value itself).
template <class C> void read_pixels(hls::stream<axis_word> &in, hls::stream<typename conv_dims<C>::in_elem> &out, ap_uint<32> n) {
    static constexpr int per_beat = kPixelsPerBeat / C::in_par;
    static_assert(C::in_channels == 1 && kPixelsPerBeat % C::in_par == 0, "whole elements per beat");
    static_assert(kInBeatsPerImage * kPixelsPerBeat == C::in_height * C::in_width, "whole beats per image");
    static_assert(C::in_t::width == 8, "pixels are bytes");
    ap_uint<64> beat = 0;
image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
    beat_loop:
        for (int b = 0; b < kInBeatsPerImage; ++b) {
        part_loop:
            for (int h = 0; h < per_beat; ++h) {
#pragma HLS PIPELINE II = 1
                if (h == 0) beat = in.read().data;
                typename conv_dims<C>::in_elem e;
                for (int p = 0; p < C::in_par; ++p) e.v[p].range(7, 0) = beat.range(8 * (h * C::in_par + p) + 7, 8 * (h * C::in_par + p));
                out.write(e);
            }
        }
    }
}

// Logits -> argmax -> kOutBeatsPerImage beats: words 0..9 the raw logits, 10 the class, 11 zero.
// TLAST on the last beat of the batch only.
template <class C>
void write_results(hls::stream<typename dense_dims<C>::out_elem> &in, hls::stream<axis_word> &out, ap_uint<32> n) {
    static constexpr int words = kOutBeatsPerImage * kWordsPerBeat;
    static_assert(C::units == kNumClasses && C::units + 1 <= words, "logits and class fit the result beats");
    typename C::out_t logits[C::units];
#pragma HLS ARRAY_PARTITION variable = logits complete
    ap_uint<16> packed[words];
#pragma HLS ARRAY_PARTITION variable = packed complete
image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
    collect_loop:
        for (int k = 0; k < C::units / C::pe; ++k) {
#pragma HLS PIPELINE II = 1
            typename dense_dims<C>::out_elem e = in.read();
            for (int p = 0; p < C::pe; ++p) logits[k * C::pe + p] = e.v[p];
        }
        int best = 0;
    argmax_loop:
        for (int i = 1; i < C::units; ++i) {
#pragma HLS UNROLL
            if (logits[i] > logits[best]) best = i;  // strict: the first of equal maxima wins
        }
    pack_loop:
        for (int i = 0; i < words; ++i) {
#pragma HLS UNROLL
            packed[i] = i < C::units ? raw_word(logits[i < C::units ? i : 0]) : ap_uint<16>(i == C::units ? best : 0);
        }
    beat_loop:
        for (int b = 0; b < kOutBeatsPerImage; ++b) {
#pragma HLS PIPELINE II = 1
            axis_word w;
            for (int k = 0; k < kWordsPerBeat; ++k) w.data.range(16 * k + 15, 16 * k) = packed[b * kWordsPerBeat + k];
            w.keep = -1;
            w.strb = -1;
            w.last = img == n - 1 && b == kOutBeatsPerImage - 1;
            out.write(w);
        }
    }
}

// ------------------------------------------------------------------------------ weight load
// Mode 1 reads raw 16-bit words, 4 a beat, in the order of lenet5_pynq.hls_stream: per layer the
// kernel in Keras layout ((kh, kw, cin, cout) or (in, out), C order), then the bias.
struct word_reader {
    ap_uint<64> beat;
    int lane;
    ap_uint<16> checksum;
    ap_uint<16> next(hls::stream<axis_word> &in) {
#pragma HLS INLINE
        if (lane == 0) beat = in.read().data;
        ap_uint<16> w = beat.range(16 * lane + 15, 16 * lane);
        lane = lane == kWordsPerBeat - 1 ? 0 : lane + 1;
        checksum += w;
        return w;
    }
};

template <class C>
void load_conv(hls::stream<axis_word> &in, word_reader &rd, typename conv_dims<C>::kernel_mem &weights,
               typename conv_dims<C>::bias_mem &bias, bool write) {
    typedef conv_dims<C> D;
    int sf = 0, s = 0;  // tap t = sf * simd + s
tap_loop:
    for (int t = 0; t < D::taps; ++t) {
        int nf = 0, pe = 0;  // filter o = nf * pe + pe
    filter_loop:
        for (int o = 0; o < C::filters; ++o) {
#pragma HLS PIPELINE II = 1
            word_t w = rd.next(in);
            if (write) weights[nf][sf][pe][s] = w;
            if (++pe == C::pe) pe = 0, ++nf;
        }
        if (++s == C::simd) s = 0, ++sf;
    }
    int nf = 0, pe = 0;
bias_loop:
    for (int o = 0; o < C::filters; ++o) {
#pragma HLS PIPELINE II = 1
        word_t w = rd.next(in);
        if (write) bias[nf][pe] = w;
        if (++pe == C::pe) pe = 0, ++nf;
    }
}

template <class C>
void load_dense(hls::stream<axis_word> &in, word_reader &rd, typename dense_dims<C>::kernel_mem &weights,
                typename dense_dims<C>::bias_mem &bias, bool write) {
    int sf = 0, s = 0;  // input i = sf * simd + s
input_loop:
    for (int i = 0; i < C::in_size; ++i) {
        int nf = 0, pe = 0;  // unit o = nf * pe + pe
    unit_loop:
        for (int o = 0; o < C::units; ++o) {
#pragma HLS PIPELINE II = 1
            word_t w = rd.next(in);
            if (write) weights[sf][nf][s][pe] = w;
            if (++pe == C::pe) pe = 0, ++nf;
        }
        if (++s == C::simd) s = 0, ++sf;
    }
    int nf = 0, pe = 0;
bias_loop:
    for (int o = 0; o < C::units; ++o) {
#pragma HLS PIPELINE II = 1
        word_t w = rd.next(in);
        if (write) bias[nf][pe] = w;
        if (++pe == C::pe) pe = 0, ++nf;
    }
}

}  // namespace lenet
