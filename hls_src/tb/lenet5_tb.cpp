// Testbench of the LeNet-5 top (Vitis HLS convention: returns 0 when every check passes).
//
// Usage: lenet5_tb [DIR [MAX_IMAGES]].  Reads the golden data that
// `python -m lenet5_pynq.export golden --out DIR` writes (default DIR: build/golden), using at most
// MAX_IMAGES of them (a whole number, 1 or more; default all; build_prj.tcl passes csim_images and
// cosim_images here; anything else, or a third argument, is an error: exit 2 before any check),
// streams batches through lenet5() as the DMA would, and checks
// every logit bit, every class, the beat count and TLAST on the final beat only:
//   1. batch 0 (no output beat, nothing read), 1 and all images (10,000) with the power-on weights;
//   2. mode 1 with the alternate weight set (ack beat), then all images against its golden results;
//   3. a load stream with a bad header (rejected, weights unchanged);
//   4. mode 1 with the shipped weights again, then a batch against the shipped golden results.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lenet5.h"

namespace {

using lenet::kInBeatsPerImage;
using lenet::kNumClasses;
using lenet::kOutBeatsPerImage;
using lenet::kWordsPerBeat;

constexpr int kImageBytes = lenet::kInputHeight * lenet::kInputWidth;

// One raw word of an ack beat, the field that starts at bit `lsb`.
static unsigned ack_field(uint64_t ack, int lsb) { return unsigned(ack >> lsb) & ((1u << lenet::kWordBits) - 1); }
int failures = 0;

#define CHECK(cond, ...)                                     \
    do {                                                     \
        if (!(cond)) {                                       \
            std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            std::printf(__VA_ARGS__);                        \
            std::printf("\n");                               \
            ++failures;                                      \
        }                                                    \
    } while (0)

template <typename T> bool read_file(const std::string &path, std::vector<T> &out) {
    FILE *f = std::fopen(path.c_str(), "rb");
    if (!f) {
        std::printf("cannot open %s (run: python -m lenet5_pynq.export golden --out DIR)\n", path.c_str());
        return false;
    }
    std::fseek(f, 0, SEEK_END);
    long size = std::ftell(f);
    std::fseek(f, 0, SEEK_SET);
    out.resize(size / sizeof(T));
    size_t got = std::fread(out.data(), sizeof(T), out.size(), f);
    std::fclose(f);
    return got == out.size() && size % sizeof(T) == 0;
}

// MAX_IMAGES: decimal digits only, 1 or more (strtoul alone would read "abc" as 0 and "-1" as huge).
bool parse_count(const char *text, size_t *out) {
    if (text == nullptr || *text == '\0') return false;
    for (const char *p = text; *p; ++p)
        if (*p < '0' || *p > '9') return false;
    errno = 0;
    char *end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (errno == ERANGE || *end != '\0' || value == 0 || value > static_cast<unsigned long long>(SIZE_MAX))
        return false;
    *out = static_cast<size_t>(value);
    return true;
}

struct Beat {
    uint64_t data;
    bool last;
};

// One call of the top, as one DMA transfer each way: TLAST on the last input beat.
std::vector<Beat> run(unsigned mode, unsigned n, const std::vector<uint64_t> &beats, size_t *unread) {
    hls::stream<axis_word> in("tb_in"), out("tb_out");
    for (size_t i = 0; i < beats.size(); ++i) {
        axis_word w;
        w.data = beats[i];
        w.keep = -1;
        w.strb = -1;
        w.last = i + 1 == beats.size();
        in.write(w);
    }
    lenet5(in, out, n, mode);
    std::vector<Beat> result;
    while (!out.empty()) {
        axis_word w = out.read();
        result.push_back({w.data.to_uint64(), w.last == 1});
    }
    *unread = 0;
    while (!in.empty()) in.read(), ++*unread;
    return result;
}

struct Golden {
    std::vector<int16_t> logits;
    std::vector<uint16_t> classes;
    std::vector<uint64_t> weights;  // the mode-1 stream of this set
};

// Classify images [first, first + n) and compare with the golden results.  Returns images/s.
double classify(const char *what, const std::vector<uint8_t> &images, size_t first, size_t n, const Golden &g) {
    std::vector<uint64_t> beats(n * kInBeatsPerImage);
    std::memcpy(beats.data(), images.data() + first * kImageBytes, n * kImageBytes);  // little-endian host
    size_t unread = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Beat> out = run(lenet::kModeClassify, n, beats, &unread);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK(unread == 0, "%s: %zu input beats left unread", what, unread);
    CHECK(out.size() == n * kOutBeatsPerImage, "%s: %zu output beats for %zu images, expected %zu", what, out.size(), n,
          n * kOutBeatsPerImage);
    size_t last_beats = 0, bad_logits = 0, bad_classes = 0, bad_pad = 0;
    for (size_t i = 0; i < out.size(); ++i) last_beats += out[i].last;
    CHECK(n == 0 || (!out.empty() && out.back().last && last_beats == 1),
          "%s: TLAST on %zu beats, expected on the final one only", what, last_beats);
    for (size_t k = 0; k < n && (k + 1) * kOutBeatsPerImage <= out.size(); ++k) {
        uint16_t words[kOutBeatsPerImage * kWordsPerBeat];
        for (int b = 0; b < kOutBeatsPerImage; ++b)
            std::memcpy(words + kWordsPerBeat * b, &out[k * kOutBeatsPerImage + b].data, sizeof(uint64_t));
        const size_t img = first + k;
        bool logits_ok = true;
        for (int c = 0; c < kNumClasses; ++c) logits_ok &= int16_t(words[c]) == g.logits[img * kNumClasses + c];
        if (!logits_ok && bad_logits++ < 5) {
            std::printf("  %s: image %zu logits", what, img);
            for (int c = 0; c < kNumClasses; ++c)
                std::printf(" %d/%d", int16_t(words[c]), g.logits[img * kNumClasses + c]);
            std::printf(" (got/golden)\n");
        }
        if (words[kNumClasses] != g.classes[img] && bad_classes++ < 5)
            std::printf("  %s: image %zu class %u, golden %u\n", what, img, words[kNumClasses], g.classes[img]);
        for (int w = kNumClasses + 1; w < kOutBeatsPerImage * kWordsPerBeat; ++w) bad_pad += words[w] != 0;
    }
    CHECK(bad_logits == 0, "%s: %zu of %zu images differ from the golden logits", what, bad_logits, n);
    CHECK(bad_classes == 0, "%s: %zu of %zu classes differ", what, bad_classes, n);
    CHECK(bad_pad == 0, "%s: %zu nonzero pad words", what, bad_pad);
    double rate = seconds > 0 ? n / seconds : 0;
    std::printf("%-40s %6zu images: %s (%.0f images/s)\n", what, n,
                bad_logits || bad_classes || out.size() != n * kOutBeatsPerImage ? "MISMATCH" : "bit-exact", rate);
    return rate;
}

// Mode 1; checks the ack beat.  expect_ok: the header is valid.
void load(const char *what, const std::vector<uint64_t> &stream, bool expect_ok) {
    size_t unread = 0;
    std::vector<Beat> out = run(lenet::kModeLoadWeights, 0, stream, &unread);
    CHECK(unread == 0, "%s: %zu weight beats left unread", what, unread);
    CHECK(out.size() == 1 && out[0].last, "%s: %zu ack beats (TLAST %d), expected 1 with TLAST", what, out.size(),
          out.empty() ? -1 : int(out[0].last));
    if (out.empty()) return;
    uint64_t ack = out[0].data;
    unsigned checksum = 0;
    const uint16_t *words = reinterpret_cast<const uint16_t *>(stream.data() + 1);
    for (unsigned i = 0; i < lenet::kWeightWords; ++i) checksum += words[i];
    const unsigned magic = ack_field(ack, lenet::kAckMagicLsb), status = ack_field(ack, lenet::kAckStatusLsb);
    const unsigned count = ack_field(ack, lenet::kAckWordsLsb), sum = ack_field(ack, lenet::kAckChecksumLsb);
    constexpr unsigned kWordMask = (1u << lenet::kWordBits) - 1;
    CHECK(magic == lenet::kWeightMagic, "%s: ack magic 0x%04x", what, magic);
    CHECK(status == (expect_ok ? lenet::kAckOk : lenet::kAckBadHeader), "%s: ack status %u", what, status);
    CHECK(count == (lenet::kWeightWords & kWordMask), "%s: ack word count %u", what, count);
    CHECK(sum == (checksum & kWordMask), "%s: ack checksum 0x%04x, expected 0x%04x", what, sum, checksum & kWordMask);
    std::printf("%-40s %6zu beats: ack status %u, checksum 0x%04x\n", what, stream.size(), status, sum);
}

}  // namespace

int main(int argc, char **argv) {
    if (argc > 3) {
        std::printf("FAIL: usage: lenet5_tb [DIR [MAX_IMAGES]]; %d arguments given, the third is '%s'\n", argc - 1,
                    argv[3]);
        return 2;
    }
    size_t max_images = 0;  // 0: all
    if (argc > 2 && !parse_count(argv[2], &max_images)) {
        std::printf("FAIL: MAX_IMAGES '%s' is not a whole number of images (1 or more)\n", argv[2]);
        return 2;
    }
    const std::string dir = argc > 1 ? argv[1] : "build/golden";
    std::vector<uint8_t> images;
    Golden shipped, alternate;
    bool ok = read_file(dir + "/images.bin", images);
    for (auto set : {std::make_pair("shipped", &shipped), std::make_pair("alternate", &alternate)}) {
        const std::string p = dir + "/" + set.first;
        ok = ok && read_file(p + "_logits.bin", set.second->logits) &&
             read_file(p + "_classes.bin", set.second->classes) && read_file(p + "_weights.bin", set.second->weights);
    }
    const size_t available = images.size() / kImageBytes;
    if (!ok || available == 0 || shipped.classes.size() != available || alternate.classes.size() != available) {
        std::printf("FAIL: golden data in %s is missing or inconsistent\n", dir.c_str());
        return 1;
    }
    const size_t n = max_images ? std::min(available, max_images) : available;
    std::printf("%s: %zu of %zu test images, IP %s\n", dir.c_str(), n, available, lenet::kVlnv);

    // 1. Power-on weights.
    classify("batch 0 (power-on weights)", images, 0, 0, shipped);
    classify("batch 1 (power-on weights)", images, 0, 1, shipped);
    double rate = classify("full batch (power-on weights)", images, 0, n, shipped);

    // 2. A second weight set through mode 1.
    load("load alternate weights", alternate.weights, true);
    classify("full batch (alternate weights)", images, 0, n, alternate);

    // 3. A bad header is rejected and leaves the weights alone.
    std::vector<uint64_t> bad = shipped.weights;
    bad[0] ^= 0x1;  // magic
    load("load with a bad header", bad, false);
    classify("batch after rejected load (alternate)", images, 0, std::min<size_t>(n, 500), alternate);

    // 4. Back to the shipped weights.
    load("reload shipped weights", shipped.weights, true);
    classify("batch after reload (shipped weights)", images, n / 2, n - n / 2, shipped);

    if (failures) {
        std::printf("FAILED: %d check(s)\n", failures);
        return 1;
    }
    std::printf("PASSED: all checks, C simulation at %.0f images/s\n", rate);
    return 0;
}
