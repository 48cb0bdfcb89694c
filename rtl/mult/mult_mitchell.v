// mult_mitchell.v -- Mitchell logarithmic multiplier, unsigned 8x8 -> 16.
//
// Reference: J. N. Mitchell, "Computer multiplication and division using
// binary logarithms", IRE Trans. Electronic Computers EC-11(4), 1962.
//
// For a, b != 0: k = leading-one position, x = (a - 2^k) / 2^k as a 7-bit
// fraction, s = xa + xb.
//   s < 1 : P = floor(2^(ka+kb)   * (1 + s))
//   s >= 1: P = floor(2^(ka+kb+1) * s)        (characteristic + 1)
// A zero operand gives 0.  The datapath is mitchell_core without correction.
// Needs mitchell_core.v, lod8.v.

module mult_mitchell (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    mitchell_core #(.C_NC(0), .C_C(0)) u_core (.a(a), .b(b), .p(p));
endmodule
