// The C entry of the C-simulation library: beats in, the real top, beats out.
#include "csim_api.h"

#include "lenet5.h"

extern "C" int lenet5_csim_run(uint32_t mode, uint32_t n, const uint64_t *in_beats, size_t n_in, uint64_t *out_beats,
                               uint8_t *last_flags, size_t out_cap, size_t *n_out, size_t *in_left) {
    hls::stream<axis_word> in("in"), out("out");
    for (size_t i = 0; i < n_in; ++i) {
        axis_word w;
        w.data = in_beats[i];
        w.keep = -1;
        w.strb = -1;
        w.last = i + 1 == n_in;
        in.write(w);
    }
    lenet5(in, out, n, mode);
    size_t produced = 0;
    while (!out.empty()) {
        axis_word w = out.read();
        if (produced < out_cap) {
            out_beats[produced] = w.data.to_uint64();
            last_flags[produced] = w.last.to_uint();
        }
        ++produced;
    }
    *n_out = produced;
    *in_left = 0;
    while (!in.empty()) {
        in.read();
        ++*in_left;
    }
    if (produced > out_cap) return LENET5_CSIM_OUT_FULL;
    if (*in_left) return LENET5_CSIM_IN_LEFT;
    return LENET5_CSIM_OK;
}

extern "C" const char *lenet5_csim_vlnv(void) { return lenet::kVlnv; }

extern "C" const char *lenet5_csim_status_message(int status) {
    switch (status) {
        case LENET5_CSIM_OK: return "ok";
        case LENET5_CSIM_OUT_FULL: return "the top wrote more output beats than the buffer holds";
        case LENET5_CSIM_IN_LEFT: return "the top returned without reading every input beat";
        default: return "unknown status";
    }
}
