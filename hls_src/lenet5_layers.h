// The layer templates of the LeNet-5 dataflow pipeline: one per kind, configured by the
// generated structs of lenet5_types.h (C::in_height, C::pe, ...).  Derived sizes are the
// expressions in the *_dims structs; nothing here types a layer size.
//
// Every stage is one loop pipelined at II = 1 inside its image loop (a semi-perfect nest that
// Vitis HLS flattens, so consecutive images follow each other with no drain).  Running values
// live in registers: no loop-carried read-modify-write of a memory closer than
// kMinMemoryDistance iterations, and every sum of products is an adder tree before one add to
// the running value.  Cycles per image, stage by stage, are what `python -m lenet5_pynq.budget`
// simulates (lenet5_pynq/cyclesim.py models exactly these loops).
//
// Stages, in pipeline order (each one process of the DATAFLOW region in lenet5.cpp):
//   read_pixels    AXI beats -> one pixel per element
//   conv_windows   K-1 line memories + a K x K register window -> one (kh, kw, cin) window per output
//   conv_mac       window x kernel (pe x simd MACs a cycle) + bias -> cast -> ReLU -> max-pool
//   dense          input-major: accumulates while its inputs stream in, then emits pe at a time
//   write_results  argmax (first of equal maxima) and the result beats of each image
#pragma once

#include <hls_stream.h>

#include "lenet5.h"

namespace lenet {

// Iterations between a memory write and the first read of the same address that depends on it,
// at the least, wherever a DEPENDENCE pragma declares the dependence absent: more than the
// pipeline depth of any stage here (at most 8 cycles, lenet5_pynq/cyclesim.py's estimates), so
// the read always sees the write.
constexpr int kMinMemoryDistance = 8;

template <typename T, int N> struct vec {
    T v[N];
};

// A product whose multiplier is bound to LUTs (InLuts) or to a DSP48 slice.
template <bool InLuts> struct multiply;
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

// Balanced adder tree over x[0..N-1]: ceil(log2 N) adder levels, each sum one bit wider than its
// operands (ap_fixed's exact addition), so the running value sees a single add per cycle.
template <int N> struct adder_tree {
    template <typename T> static auto sum(const T *x) {
#pragma HLS INLINE
        return adder_tree<N / 2>::sum(x) + adder_tree<N - N / 2>::sum(x + N / 2);
    }
};
template <> struct adder_tree<1> {
    template <typename T> static T sum(const T *x) {
#pragma HLS INLINE
        return x[0];
    }
};

// The fixed-point value whose raw bits are the memory word w (the word's low T::width bits).
template <typename T> T from_word(word_t w) {
#pragma HLS INLINE
    T x;
#ifdef __SYNTHESIS__
    x.range(T::width - 1, 0) = ap_int<kWordBits>(w).range(T::width - 1, 0);
#else
    x.setBits(ap_ulong(ap_slong(w)));  // the same bits, without range-reference overhead in g++
#endif
    return x;
}

// Raw bits of a fixed-point value as a sign-extended word (the stream's int16).
template <typename T> ap_uint<kWordBits> raw_word(const T &x) {
#pragma HLS INLINE
    ap_int<T::width> r;
    r.range(T::width - 1, 0) = x.range(T::width - 1, 0);
    ap_int<kWordBits> w = r;
    return w;
}

// One lane's sum of simd products plus its running value (the bias on the first fold).
template <class C, int Simd, typename In, typename Accum>
Accum mac_lane(const In *x, const word_t *w, const Accum &running) {
#pragma HLS INLINE
    typedef decltype(In() * typename C::kernel_t()) product_t;
    product_t p[Simd];
#pragma HLS ARRAY_PARTITION variable = p complete
products:
    for (int s = 0; s < Simd; ++s) {
#pragma HLS UNROLL
        p[s] = multiply<C::lut_multipliers>::run(x[s], from_word<typename C::kernel_t>(w[s]));
    }
    return running + adder_tree<Simd>::sum(p);
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
    static_assert(conv_height % C::pool == 0 && conv_width % C::pool == 0, "pool must tile the conv output");
    static_assert(C::filters % C::pe == 0 && taps % C::simd == 0, "folds must divide evenly");
    static_assert(C::in_width >= kMinMemoryDistance, "line memories: a row apart must exceed the pipeline depth");
    static_assert(conv_width * neuron_fold * synapse_fold >= kMinMemoryDistance,
                  "pool row: a conv row apart must exceed the pipeline depth");
    typedef vec<typename C::in_t, C::in_channels> pixel;  // one input pixel, all channels
    typedef vec<typename C::in_t, taps> window;
    typedef vec<typename C::out_t, C::filters> out_elem;
    typedef word_t kernel_mem[neuron_fold][synapse_fold][C::pe][C::simd];  // raw C::kernel_t words
    typedef word_t bias_mem[neuron_fold][C::pe];  // raw C::bias_t words
};

// Pixels -> windows, one input pixel a cycle (in_height x in_width cycles an image).  Line
// memory k holds input row y-K+1+k for the columns still to come; each cycle reads the column
// of K-1 stored pixels once into registers, stores the column shifted up by one row with the new
// pixel at the bottom, shifts the K x K register window left and emits it from column K-1 of
// row K-1 on.
template <class C>
void conv_windows(hls::stream<typename conv_dims<C>::pixel> &in, hls::stream<typename conv_dims<C>::window> &out,
                  ap_uint<32> n) {
    typedef conv_dims<C> D;
    typedef typename D::pixel pixel;
    constexpr int K = C::kernel;
    pixel lines[K - 1][C::in_width];
#pragma HLS ARRAY_PARTITION variable = lines complete dim = 1
    // lines[k][x] is written at column x of a row and read at column x of the next one:
    // in_width (>= kMinMemoryDistance) iterations apart.
#pragma HLS DEPENDENCE variable = lines inter false
    pixel win[K][K];
#pragma HLS ARRAY_PARTITION variable = win complete dim = 0

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1  // n images; not pipelined: flattened into the loop below
    row_loop:
        for (int y = 0; y < C::in_height; ++y) {
        col_loop:
            for (int x = 0; x < C::in_width; ++x) {
#pragma HLS PIPELINE II = 1  // target II 1: one pixel in, at most one window out
                pixel column[K];
#pragma HLS ARRAY_PARTITION variable = column complete dim = 0
            read_column:
                for (int k = 0; k < K - 1; ++k) {
#pragma HLS UNROLL
                    column[k] = lines[k][x];
                }
                column[K - 1] = in.read();
            store_column:
                for (int k = 0; k < K - 1; ++k) {
#pragma HLS UNROLL
                    lines[k][x] = column[k + 1];
                }
            shift_window:
                for (int kh = 0; kh < K; ++kh) {
#pragma HLS UNROLL
                    for (int kw = 0; kw < K - 1; ++kw) win[kh][kw] = win[kh][kw + 1];
                    win[kh][K - 1] = column[kh];
                }
                if (y >= K - 1 && x >= K - 1) {
                    typename D::window w;
                emit_taps:
                    for (int kh = 0; kh < K; ++kh)
                        for (int kw = 0; kw < K; ++kw)
                            for (int c = 0; c < C::in_channels; ++c)
                                w.v[(kh * K + kw) * C::in_channels + c] = win[kh][kw].v[c];
                    out.write(w);
                }
            }
        }
    }
}

// Windows -> pooled pixels.  Each window takes neuron_fold x synapse_fold cycles of pe x simd
// MACs; the running value starts at the bias (exact: the accumulator format holds every sum), is
// cast to the output format (its rounding and saturation), ReLU'd and max-pooled: across a pool
// tile's columns in registers (a rotating register per neuron fold), across its rows in one
// pooled row of memory written in the tile's first row and read in its later rows (a conv row
// apart).  A pooled pixel (all filters) leaves after the last window of its pool tile.
template <class C>
void conv_mac(hls::stream<typename conv_dims<C>::window> &in, hls::stream<typename conv_dims<C>::out_elem> &out,
              const typename conv_dims<C>::kernel_mem &weights, const typename conv_dims<C>::bias_mem &bias,
              ap_uint<32> n) {
    typedef conv_dims<C> D;
    typedef typename C::accum_t accum_t;
    typedef typename C::out_t out_t;
    constexpr int NF = D::neuron_fold;
    // pe x simd weight banks and pe bias banks, each read once a cycle.  The memories are the
    // globals of lenet5_weights.h: the partition applies to them (as hls4ml partitions its
    // weight arguments), and load_weights writes the same banks.
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 4
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
    out_t pool_row[D::out_width][NF][C::pe];
#pragma HLS ARRAY_PARTITION variable = pool_row complete dim = 3
    // pool_row[x / pool] is written in one conv row and read in the next (see the static_assert).
#pragma HLS DEPENDENCE variable = pool_row inter false
    accum_t acc[C::pe];
#pragma HLS ARRAY_PARTITION variable = acc complete
    out_t col_max[NF][C::pe];  // col_max[0]: this neuron fold's maximum over the tile's columns so far
#pragma HLS ARRAY_PARTITION variable = col_max complete dim = 0
    out_t pooled[C::filters];
#pragma HLS ARRAY_PARTITION variable = pooled complete
    typename D::window win;
#pragma HLS ARRAY_PARTITION variable = win.v complete

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1  // n images; not pipelined: flattened into the loop below
    row_loop:
        for (int r = 0; r < D::conv_height; ++r) {
        col_loop:
            for (int x = 0; x < D::conv_width; ++x) {
            neuron_loop:
                for (int nf = 0; nf < NF; ++nf) {
                synapse_loop:
                    for (int sf = 0; sf < D::synapse_fold; ++sf) {
#pragma HLS PIPELINE II = 1  // target II 1: pe x simd products, one add per lane to acc
                        if (nf == 0 && sf == 0) win = in.read();
                        accum_t sum[C::pe];
#pragma HLS ARRAY_PARTITION variable = sum complete
                    pe_loop:
                        for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                            const accum_t running =
                                sf == 0 ? accum_t(from_word<typename C::bias_t>(bias[nf][pe])) : acc[pe];
                            sum[pe] = mac_lane<C, C::simd>(&win.v[sf * C::simd], weights[nf][sf][pe], running);
                            acc[pe] = sum[pe];
                        }
                        if (sf == D::synapse_fold - 1) {
                            const bool first_col = x % C::pool == 0, last_col = x % C::pool == C::pool - 1;
                            const bool first_row = r % C::pool == 0, last_row = r % C::pool == C::pool - 1;
                            out_t tile[C::pe];
#pragma HLS ARRAY_PARTITION variable = tile complete
                        pool_loop:
                            for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                                out_t y = sum[pe];
                                if (C::relu && y < 0) y = 0;
                                out_t m = first_col || y > col_max[0][pe] ? y : col_max[0][pe];
                                if (last_col) {
                                    out_t above = pool_row[x / C::pool][nf][pe];
                                    if (!first_row && above > m) m = above;
                                    if (!last_row) pool_row[x / C::pool][nf][pe] = m;
                                }
                                tile[pe] = m;
                            }
                        rotate_folds:
                            for (int k = 0; k + 1 < NF; ++k) {
#pragma HLS UNROLL
                                for (int pe = 0; pe < C::pe; ++pe) col_max[k][pe] = col_max[k + 1][pe];
                            }
                            for (int pe = 0; pe < C::pe; ++pe) col_max[NF - 1][pe] = tile[pe];
                            if (last_col && last_row) {
                            gather_channels:
                                for (int c = 0; c + C::pe < C::filters; ++c) pooled[c] = pooled[c + C::pe];
                                for (int pe = 0; pe < C::pe; ++pe) pooled[C::filters - C::pe + pe] = tile[pe];
                                if (nf == NF - 1) {
                                    typename D::out_elem o;
                                    for (int c = 0; c < C::filters; ++c) o.v[c] = pooled[c];
                                    out.write(o);
                                }
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
    static constexpr int accumulate_steps = synapse_fold * neuron_fold;
    static constexpr int steps = accumulate_steps + neuron_fold;  // then neuron_fold emit steps
    static_assert(C::in_size % C::in_vec == 0 && C::in_vec % C::simd == 0, "inputs must fold evenly");
    static_assert(C::units % C::pe == 0, "outputs must fold evenly");
    typedef vec<typename C::in_t, C::in_vec> in_elem;
    typedef vec<typename C::out_t, C::pe> out_elem;
    typedef word_t kernel_mem[synapse_fold][neuron_fold][C::pe][C::simd];  // raw C::kernel_t words
    typedef word_t bias_mem[neuron_fold][C::pe];  // raw C::bias_t words
};

// Input-major: every simd-wide slice of the input updates all units, pe a cycle, so the layer
// overlaps its producer and its last output is ready neuron_fold cycles after its last input.
// The running values rotate through a register file of neuron_fold x pe entries: each step
// takes the head (the neuron fold it updates) and puts the new value at the tail, so a value is
// read in the step after it was written, whatever neuron_fold is.  One pipelined loop of
// synapse_fold x neuron_fold accumulate steps and neuron_fold emit steps an image.
template <class C>
void dense(hls::stream<typename dense_dims<C>::in_elem> &in, hls::stream<typename dense_dims<C>::out_elem> &out,
           const typename dense_dims<C>::kernel_mem &weights, const typename dense_dims<C>::bias_mem &bias,
           ap_uint<32> n) {
    typedef dense_dims<C> D;
    typedef typename C::accum_t accum_t;
    constexpr int NF = D::neuron_fold;
    // pe x simd weight banks and pe bias banks, each read once a cycle (see conv_mac).
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 3
#pragma HLS ARRAY_PARTITION variable = weights complete dim = 4
#pragma HLS ARRAY_PARTITION variable = bias complete dim = 2
    accum_t acc[NF][C::pe];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 0
    typename D::in_elem x;
#pragma HLS ARRAY_PARTITION variable = x.v complete

    int sf = 0, g = 0, nf = 0;  // input slice, its group within the element, neuron fold

image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1  // n images; not pipelined: flattened into the loop below
    step_loop:
        for (int t = 0; t < D::steps; ++t) {
#pragma HLS PIPELINE II = 1  // target II 1: pe x simd products, one add per lane to the head value
            accum_t head[C::pe];
#pragma HLS ARRAY_PARTITION variable = head complete
            for (int pe = 0; pe < C::pe; ++pe) head[pe] = acc[0][pe];
        rotate:
            for (int k = 0; k + 1 < NF; ++k) {
#pragma HLS UNROLL
                for (int pe = 0; pe < C::pe; ++pe) acc[k][pe] = acc[k + 1][pe];
            }
            if (t < D::accumulate_steps) {
                if (g == 0 && nf == 0) x = in.read();
            pe_loop:
                for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                    const accum_t running = sf == 0 ? accum_t(from_word<typename C::bias_t>(bias[nf][pe])) : head[pe];
                    acc[NF - 1][pe] = mac_lane<C, C::simd>(&x.v[g * C::simd], weights[sf][nf][pe], running);
                }
                if (++nf == NF) {
                    nf = 0;
                    sf = sf + 1 == D::synapse_fold ? 0 : sf + 1;
                    g = g + 1 == D::groups ? 0 : g + 1;
                }
            } else {
                typename D::out_elem o;
            emit_units:
                for (int pe = 0; pe < C::pe; ++pe) {
#pragma HLS UNROLL
                    typename C::out_t y = head[pe];
                    if (C::relu && y < 0) y = 0;
                    o.v[pe] = y;
                    acc[NF - 1][pe] = head[pe];
                }
                out.write(o);
            }
        }
    }
}

// ------------------------------------------------------------------------------ stream ends
// AXI beats -> one pixel per element (the pixel byte is the input_t value itself).
template <class C> void read_pixels(hls::stream<axis_word> &in, hls::stream<typename conv_dims<C>::pixel> &out,
                                    ap_uint<32> n) {
    static_assert(C::in_channels == 1, "one byte per pixel");
    static_assert(kInBeatsPerImage * kPixelsPerBeat == C::in_height * C::in_width, "whole beats per image");
    static_assert(C::in_t::width == 8, "pixels are bytes");
    ap_uint<64> beat = 0;
image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1  // n images; not pipelined: flattened into the loop below
    beat_loop:
        for (int b = 0; b < kInBeatsPerImage; ++b) {
        pixel_loop:
            for (int p = 0; p < kPixelsPerBeat; ++p) {
#pragma HLS PIPELINE II = 1  // target II 1: a beat every kPixelsPerBeat cycles
                if (p == 0) beat = in.read().data;
                typename conv_dims<C>::pixel e;
                e.v[0].range(7, 0) = beat.range(8 * p + 7, 8 * p);
                out.write(e);
            }
        }
    }
}

// Logits -> argmax -> kOutBeatsPerImage beats: words 0..9 the raw logits, 10 the class, 11 zero.
// TLAST on the last beat of the batch only.  One pipelined loop: units / pe reads, then the beats.
template <class C>
void write_results(hls::stream<typename dense_dims<C>::out_elem> &in, hls::stream<axis_word> &out, ap_uint<32> n) {
    static constexpr int words = kOutBeatsPerImage * kWordsPerBeat;
    static constexpr int reads = C::units / C::pe;
    static_assert(C::units == kNumClasses && C::units + 1 <= words, "logits and class fit the result beats");
    typename C::out_t logits[C::units];
#pragma HLS ARRAY_PARTITION variable = logits complete
    ap_uint<kWordBits> packed[words];
#pragma HLS ARRAY_PARTITION variable = packed complete
image_loop:
    for (ap_uint<32> img = 0; img < n; ++img) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1  // n images; not pipelined: flattened into the loop below
    step_loop:
        for (int t = 0; t < reads + kOutBeatsPerImage; ++t) {
#pragma HLS PIPELINE II = 1  // target II 1: one element in or one beat out
            if (t < reads) {
                typename dense_dims<C>::out_elem e = in.read();
            shift_logits:
                for (int i = 0; i + C::pe < C::units; ++i) logits[i] = logits[i + C::pe];
                for (int p = 0; p < C::pe; ++p) logits[C::units - C::pe + p] = e.v[p];
            } else {
                const int b = t - reads;
                if (b == 0) {
                    int best = 0;
                argmax_loop:
                    for (int i = 1; i < C::units; ++i) {
#pragma HLS UNROLL
                        if (logits[i] > logits[best]) best = i;  // strict: the first of equal maxima wins
                    }
                pack_loop:
                    for (int i = 0; i < words; ++i) {
#pragma HLS UNROLL
                        packed[i] = i < C::units ? raw_word(logits[i < C::units ? i : 0])
                                                 : ap_uint<kWordBits>(i == C::units ? best : 0);
                    }
                }
                axis_word w;
                for (int k = 0; k < kWordsPerBeat; ++k)
                    w.data.range(kWordBits * k + kWordBits - 1, kWordBits * k) = packed[b * kWordsPerBeat + k];
                w.keep = -1;
                w.strb = -1;
                w.last = img == n - 1 && b == kOutBeatsPerImage - 1;
                out.write(w);
            }
        }
    }
}

// ------------------------------------------------------------------------------ weight load
// Mode 1 reads raw words, kWordsPerBeat a beat, in the order of lenet5_pynq.hls_stream: per layer the
// kernel in Keras layout ((kh, kw, cin, cout) or (in, out), C order), then the bias.
struct word_reader {
    ap_uint<64> beat;
    int lane;
    ap_uint<kWordBits> checksum;
    ap_uint<kWordBits> next(hls::stream<axis_word> &in) {
#pragma HLS INLINE
        if (lane == 0) beat = in.read().data;
        ap_uint<kWordBits> w = beat.range(kWordBits * lane + kWordBits - 1, kWordBits * lane);
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
#pragma HLS PIPELINE II = 1  // target II 1: one weight word a cycle (44,426 words a load)
            word_t w = rd.next(in);
            if (write) weights[nf][sf][pe][s] = w;
            if (++pe == C::pe) pe = 0, ++nf;
        }
        if (++s == C::simd) s = 0, ++sf;
    }
    int nf = 0, pe = 0;
bias_loop:
    for (int o = 0; o < C::filters; ++o) {
#pragma HLS PIPELINE II = 1  // target II 1: one weight word a cycle (44,426 words a load)
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
#pragma HLS PIPELINE II = 1  // target II 1: one weight word a cycle (44,426 words a load)
            word_t w = rd.next(in);
            if (write) weights[sf][nf][pe][s] = w;
            if (++pe == C::pe) pe = 0, ++nf;
        }
        if (++s == C::simd) s = 0, ++sf;
    }
    int nf = 0, pe = 0;
bias_loop:
    for (int o = 0; o < C::units; ++o) {
#pragma HLS PIPELINE II = 1  // target II 1: one weight word a cycle (44,426 words a load)
        word_t w = rd.next(in);
        if (write) bias[nf][pe] = w;
        if (++pe == C::pe) pe = 0, ++nf;
    }
}

}  // namespace lenet
