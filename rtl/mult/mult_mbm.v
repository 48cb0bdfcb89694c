// mult_mbm.v -- MBM, minimally biased logarithmic multiplier, unsigned 8x8 -> 16.
//
// Reference: H. Saadat, H. Bokhari, S. Parameswaran, "Minimally biased
// multipliers for approximate integer and floating-point multiplication",
// IEEE TCAD 37(11), 2018.
//
// Mitchell's multiplier (7-bit fractions fa, fb, S = fa + fb) plus an
// error-correction term added to the mantissa: C = 1/12 truncated to 7
// fraction bits (10/128) without a carry, C/2 (5/128) with a carry.
//   S < 128 : P = floor((128 + S + 10) * 2^(ka+kb) / 128)
//   S >= 128: f = S - 128; m = 128 + f + 5, or 128 + f when f + 5 >= 128
//             (the correction would overflow the mantissa: omitted);
//             P = floor(m * 2^(ka+kb+1) / 128)
// A zero operand gives 0.  The result always fits 16 bits.
// Needs mitchell_core.v, lod8.v.

module mult_mbm (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    // 1/12 = 0.0001010101..b -> 7 bits: 0.0001010 = 10/128; C/2 = 5/128
    mitchell_core #(.C_NC(10), .C_C(5)) u_core (.a(a), .b(b), .p(p));
endmodule
