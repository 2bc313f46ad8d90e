// The tensor-core instructions the tensor kernel uses (sm_80 and later): ldmatrix, and mma.sync
// on fp16 (m16n8k16, fp32 sums) and on 8-bit integers (m16n8k32, int32 sums).
//
// Both mma shapes see their operands the same way in bytes, which is what lets one kernel serve
// both arithmetics: an A fragment is 16 rows x 32 bytes (four 8x16-byte matrices, as ldmatrix.x4
// loads them), a B fragment 32 bytes of k x 8 columns, two 32-bit registers a lane; lane l holds
// row/column g = l / 4 and bytes 4 t .. 4 t + 3 (t = l % 4) of each 16-byte half of k.
// Accumulator registers: c0, c1 = row g, columns 2 t, 2 t + 1; c2, c3 = row g + 8.
#pragma once

#include <cstdint>

namespace lenet5 {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define LENET5_NO_TENSOR_OPS 1  // compiled for an older card: the host never launches these
#endif

struct FragA {
    uint32_t r[4];
};
struct FragB {
    uint32_t r[2];
};

// Four 8x8 16-bit matrices (8 rows of 16 bytes each); lane l gives the address of row l % 8 of
// matrix l / 8.
__device__ __forceinline__ FragA ldmatrix_x4(const void* row) {
    FragA a;
#ifndef LENET5_NO_TENSOR_OPS
    const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(a.r[0]), "=r"(a.r[1]), "=r"(a.r[2]), "=r"(a.r[3])
                 : "r"(addr));
#else
    a.r[0] = a.r[1] = a.r[2] = a.r[3] = 0;
    static_cast<void>(row);
#endif
    return a;
}

// d += a * b: fp16 operands, fp32 sums.
__device__ __forceinline__ void mma_f16(float (&d)[4], const FragA& a, const FragB& b) {
#ifndef LENET5_NO_TENSOR_OPS
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
#else
    static_cast<void>(d), static_cast<void>(a), static_cast<void>(b);
#endif
}

// d += a * b: unsigned 8-bit a, unsigned (B_SIGNED false) or signed 8-bit b, int32 sums.
template <bool B_SIGNED>
__device__ __forceinline__ void mma_u8(int32_t (&d)[4], const FragA& a, const FragB& b) {
#ifndef LENET5_NO_TENSOR_OPS
    if constexpr (B_SIGNED) {
        asm volatile(
            "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
            : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
    } else {
        asm volatile(
            "mma.sync.aligned.m16n8k32.row.col.s32.u8.u8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
            "{%0, %1, %2, %3};\n"
            : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
            : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
    }
#else
    static_cast<void>(d), static_cast<void>(a), static_cast<void>(b);
#endif
}

}  // namespace lenet5
