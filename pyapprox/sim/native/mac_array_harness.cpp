// mac_array_harness.cpp -- in-process driver of the Verilated rtl/mac/mac_array.v (pyapprox/sim/verilated.py).
//
// Compiled together with a Verilator --cc model of mac_array into a shared library, loaded through ctypes.
// pa_run streams whole blocks of a layer from numpy buffers through the array and writes every output back:
//   w      [O, K]    weight wire codes (9-bit, see mac_array.v) of output channel o, step k
//   x      [G, K, L] activation wire codes of group g, step k, output pixel l
//   bias, m, mneg, shift, qlo, qhi [O] per output channel
//   blocks [n, 4]    one tile each: (group, r0, r1, c0): rows r0..r1-1 (output channels), columns c0..c0+COLS-1
//                    clipped to L; dense tiles (dw = 0) read group `group` for every row, depthwise tiles
//                    (dw = 1, per-PE activations) read group r0 + r on row r
//   acc [O, L] int64, ovf [O, L] uint8, q [O, L] int16 (wire code): written for every output of every block.
// The blocks are split into `threads` contiguous ranges, each streamed by its own model instance (own
// VerilatedContext, kept between calls) on its own thread, with the array's valid/ready protocol: one beat per
// cycle while in_ready, out_ready held high, rows drained while the next tile accumulates. A synchronous reset
// (two cycles) precedes each range. With a VCD path (only in a build with --trace, one thread) a fresh traced
// instance dumps every half cycle. Calls are serialised.
// The build defines PA_ROWS, PA_COLS, PA_ACC_BITS, PA_M_BITS, PA_S_BITS (checked against every job).
// Returns the number of clock cycles simulated (summed over threads), or -1 with a message in err.

#include "Vmac_array_drv.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// -- bit fields of Verilator port values (CData/SData/IData/QData or VlWide<N>) ---------------------------
template <typename T>
inline void put(T& port, int lsb, int width, uint64_t v) {
    const uint64_t mask = width >= 64 ? ~0ULL : ((1ULL << width) - 1);
    port = static_cast<T>((static_cast<uint64_t>(port) & ~(mask << lsb)) | ((v & mask) << lsb));
}
template <std::size_t N>
inline void put(VlWide<N>& port, int lsb, int width, uint64_t v) {
    const uint64_t mask = width >= 64 ? ~0ULL : ((1ULL << width) - 1);
    v &= mask;
    for (int done = 0; done < width;) {
        const int bit = lsb + done, word = bit >> 5, off = bit & 31;
        const int n = std::min(32 - off, width - done);
        const uint32_t m = (n == 32 ? 0xFFFFFFFFu : ((1u << n) - 1)) << off;
        port[word] = (port[word] & ~m) | ((static_cast<uint32_t>(v >> done) << off) & m);
        done += n;
    }
}
template <typename T>
inline uint64_t get(const T& port, int lsb, int width) {
    const uint64_t mask = width >= 64 ? ~0ULL : ((1ULL << width) - 1);
    return (static_cast<uint64_t>(port) >> lsb) & mask;
}
template <std::size_t N>
inline uint64_t get(const VlWide<N>& port, int lsb, int width) {
    uint64_t v = 0;
    for (int done = 0; done < width;) {
        const int bit = lsb + done, word = bit >> 5, off = bit & 31;
        const int n = std::min(32 - off, width - done);
        const uint64_t part = (static_cast<uint64_t>(port[word]) >> off) & ((n == 32) ? 0xFFFFFFFFULL : ((1ULL << n) - 1));
        v |= part << done;
        done += n;
    }
    return v;
}
inline int64_t sext(uint64_t v, int width) {
    return width >= 64 ? static_cast<int64_t>(v) : static_cast<int64_t>(v << (64 - width)) >> (64 - width);
}

}  // namespace

extern "C" {

struct PaLayer {
    int32_t rows, cols, acc_bits, m_bits, s_bits;  // the build's HDL parameters (checked against the model)
    int32_t dw, k, L, n_out;
    const int16_t* w;
    const int16_t* x;
    const int64_t *bias, *m, *mneg, *shift, *qlo, *qhi;
    const int64_t* blocks;
    int64_t n_blocks;
    int64_t* acc;
    uint8_t* ovf;
    int16_t* q;
};

// One model instance with its own context. Untraced instances are kept for later calls (one per thread slot).
struct Instance {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vmac_array_drv> top;
    explicit Instance(bool traced) : ctx(std::make_unique<VerilatedContext>()) {
        ctx->randReset(0);
        if (traced) ctx->traceEverOn(true);
        top = std::make_unique<Vmac_array_drv>(ctx.get(), "mac_array_drv");
    }
    ~Instance() { top->final(); }
};
static std::vector<std::unique_ptr<Instance>> g_pool;
static std::mutex g_mutex;

static int64_t run_range(const PaLayer* p, Instance* inst, int64_t b0, int64_t b1, const char* vcd) {
    const int R = p->rows, C = p->cols, K = p->k, AB = p->acc_bits, MB = p->m_bits, SB = p->s_bits;
    const int64_t L = p->L;
    VerilatedContext* ctx = inst->ctx.get();
    Vmac_array_drv* top = inst->top.get();
#if VM_TRACE
    std::unique_ptr<VerilatedVcdC> tfp;
    if (vcd) {
        tfp = std::make_unique<VerilatedVcdC>();
        top->trace(tfp.get(), 99);
        tfp->open(vcd);
    }
    auto dump = [&]() { if (tfp) tfp->dump(ctx->time()); };
#else
    auto dump = [&]() {};
#endif
    auto half = [&](int clk) { top->clk = clk; top->eval(); dump(); ctx->timeInc(5); };
    top->rst = 1; top->d_valid = 0; top->out_ready = 0;
    for (int i = 0; i < 2; ++i) { half(0); half(1); }
    top->rst = 0;
    top->out_ready = 1;
    std::deque<int64_t> pending;  // blocks whose last beat was loaded, in drain order
    int64_t bi = b0, drained = b0, cycles = 0;
    int kk = 0;
    while (drained < b1) {
        // the model is settled after the last rising edge; out_ready is held high, so a presented row is
        // taken at the coming edge, and the beat presented on d_* is loaded at it when d_ready
        if (top->out_valid) {
            const int64_t* blk = p->blocks + 4 * pending.front();
            const int64_t r0 = blk[1], r1 = blk[2], c0 = blk[3];
            const int64_t nc = std::min<int64_t>(C, L - c0);
            const int row = static_cast<int>(top->out_row);
            if (row < r1 - r0) {
                const int64_t base = (r0 + row) * L + c0;
                for (int c = 0; c < nc; ++c) {
                    p->acc[base + c] = sext(get(top->out_acc, AB * c, AB), AB);
                    p->ovf[base + c] = static_cast<uint8_t>(get(top->out_ovf, c, 1));
                    p->q[base + c] = static_cast<int16_t>(get(top->out_q, 9 * c, 9));
                }
            }
            if (top->out_last) { pending.pop_front(); ++drained; }
        }
        const bool have = bi < b1, load = have && top->d_ready;
        if (load) {
            const int64_t* blk = p->blocks + 4 * bi;
            const int64_t g = blk[0], r0 = blk[1], r1 = blk[2], c0 = blk[3];
            const int64_t nr = r1 - r0, nc = std::min<int64_t>(C, L - c0);
            top->d_valid = 1;
            top->d_first = kk == 0;
            top->d_last = kk == K - 1;
            top->d_dw = p->dw != 0;
            for (int r = 0; r < R; ++r) put(top->d_w, 9 * r, 9, r < nr ? static_cast<uint16_t>(p->w[(r0 + r) * K + kk]) : 0);
            if (p->dw) {
                for (int r = 0; r < R; ++r) {
                    const int16_t* xr = r < nr ? p->x + ((r0 + r) * K + kk) * L + c0 : nullptr;
                    for (int c = 0; c < C; ++c)
                        put(top->d_xpe, 9 * (r * C + c), 9, (xr && c < nc) ? static_cast<uint16_t>(xr[c]) : 0);
                }
            } else {
                const int16_t* xr = p->x + (g * K + kk) * L + c0;
                for (int c = 0; c < C; ++c) put(top->d_x, 9 * c, 9, c < nc ? static_cast<uint16_t>(xr[c]) : 0);
            }
            if (kk == 0) {
                for (int r = 0; r < R; ++r) {
                    const bool real = r < nr;
                    const int64_t o = r0 + r;
                    put(top->d_bias, AB * r, AB, real ? static_cast<uint64_t>(p->bias[o]) : 0);
                    put(top->d_m, MB * r, MB, real ? static_cast<uint64_t>(p->m[o]) : 1);
                    put(top->d_mneg, MB * r, MB, real ? static_cast<uint64_t>(p->mneg[o]) : 1);
                    put(top->d_shift, SB * r, SB, real ? static_cast<uint64_t>(p->shift[o]) : 0);
                    put(top->d_qlo, 9 * r, 9, real ? static_cast<uint64_t>(p->qlo[o]) : 0);
                    put(top->d_qhi, 9 * r, 9, real ? static_cast<uint64_t>(p->qhi[o]) : 0);
                }
            }
            if (kk == K - 1) { pending.push_back(bi); ++bi; kk = 0; } else { ++kk; }
        } else if (!have) {
            top->d_valid = 0;
        }
        half(0);
        half(1);
        ++cycles;
    }
#if VM_TRACE
    if (tfp) tfp->close();
#endif
    return cycles;
}

int pa_traced(void) { return VM_TRACE; }

int64_t pa_run(const PaLayer* p, int threads, const char* vcd, char* err, int errlen) {
    auto fail = [&](const std::string& msg) { std::snprintf(err, errlen, "%s", msg.c_str()); return int64_t(-1); };
    if (p->rows != PA_ROWS || p->cols != PA_COLS || p->acc_bits != PA_ACC_BITS || p->m_bits != PA_M_BITS
        || p->s_bits != PA_S_BITS)
        return fail("the job's array parameters differ from the build's");
    if (p->k < 1) return fail("a tile needs at least one accumulation step");
    if (vcd && !VM_TRACE) return fail("this build of the array has no tracing");
    if (threads < 1 || vcd) threads = 1;
    if (p->n_blocks < threads) threads = static_cast<int>(p->n_blocks > 0 ? p->n_blocks : 1);
    std::lock_guard<std::mutex> lock(g_mutex);
    std::unique_ptr<Instance> traced;
    if (vcd) {
        traced = std::make_unique<Instance>(true);
    } else {
        while (static_cast<int>(g_pool.size()) < threads) g_pool.push_back(std::make_unique<Instance>(false));
    }
    std::vector<int64_t> cycles(threads, 0);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        const int64_t b0 = p->n_blocks * t / threads, b1 = p->n_blocks * (t + 1) / threads;
        if (threads == 1) cycles[t] = run_range(p, vcd ? traced.get() : g_pool[0].get(), b0, b1, vcd);
        else workers.emplace_back([&, t, b0, b1]() { cycles[t] = run_range(p, g_pool[t].get(), b0, b1, nullptr); });
    }
    for (auto& th : workers) th.join();
    int64_t total = 0;
    for (auto c : cycles) total += c;
    return total;
}

}  // extern "C"
