// mac_requant.v -- requantization and activation of one accumulator to an output code (combinational),
// exactly pyapprox.nn.functional.requantize:
//
//   m = (acc < 0) ? m_neg : m_pos           (m_neg = round(0.2 m_pos) for LeakyReLU(0.2), else m_pos)
//   r = (acc * m + 2^(shift-1)) >> shift    (round half up; arithmetic shift; shift = 0: r = acc * m)
//   q = max(min(r, qhi), qlo)               (ReLU6 is qlo = 0, qhi = min(Q, round(6 / s_out)))
//
// acc is ACC_BITS two's complement, m_pos/m_neg are unsigned M_BITS, shift is unsigned S_BITS (0..63 by
// default), qlo/qhi/q are 9-bit two's complement integers (-256..255; the code ranges -255..255 and
// -128..127 fit). The rounding is computed without a 2^(shift-1) constant:
// floor((p + 2^(s-1)) / 2^s) = floor((floor(p / 2^(s-1)) + 1) / 2) for s >= 1, so the datapath is only
// ACC_BITS + M_BITS + 2 bits wide whatever the shift.

module mac_requant #(
    parameter ACC_BITS = 32,
    parameter M_BITS   = 16,
    parameter S_BITS   = 6
) (
    input  wire [ACC_BITS-1:0] acc,
    input  wire [M_BITS-1:0]   m_pos,
    input  wire [M_BITS-1:0]   m_neg,
    input  wire [S_BITS-1:0]   shift,
    input  wire [8:0]          qlo,
    input  wire [8:0]          qhi,
    output wire [8:0]          q
);
    localparam PW = ACC_BITS + M_BITS + 1;  // signed product width
    localparam W  = PW + 1;                 // + the rounding increment

    wire [M_BITS-1:0]   m     = acc[ACC_BITS-1] ? m_neg : m_pos;
    wire signed [W-1:0] acc_x = {{(W - ACC_BITS){acc[ACC_BITS-1]}}, acc};
    wire signed [W-1:0] m_x   = {{(W - M_BITS){1'b0}}, m};
    wire signed [W-1:0] p     = acc_x * m_x;

    wire [S_BITS-1:0]   sm1   = shift - 1'b1;
    wire signed [W-1:0] t     = p >>> sm1;
    wire signed [W-1:0] t1    = t + {{(W - 1){1'b0}}, 1'b1};
    wire signed [W-1:0] r     = (shift == {S_BITS{1'b0}}) ? p : (t1 >>> 1);

    wire signed [W-1:0] lo_x  = {{(W - 9){qlo[8]}}, qlo};
    wire signed [W-1:0] hi_x  = {{(W - 9){qhi[8]}}, qhi};
    wire signed [W-1:0] c_hi  = (r > hi_x) ? hi_x : r;
    wire signed [W-1:0] c_lo  = (c_hi < lo_x) ? lo_x : c_hi;
    assign q = c_lo[8:0];
endmodule
