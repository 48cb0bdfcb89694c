// sm_mult.v -- sign-magnitude wrapper: a signed multiplier from an unsigned
// 8x8 -> 16 one.  p_mag = inner(a_mag, b_mag); p_sign = a_sign ^ b_sign,
// except that a zero product stays (positive) zero.
//
// The inner module is chosen at compile time:
//   `SM_INNER         module name (default mult_exact_behav), e.g. -DSM_INNER=mult_drum
//   `SM_INNER_PARAMS  optional parameter override (default empty), e.g.
//                     -DSM_INNER_PARAMS=#(.K(4))

`ifndef SM_INNER
`define SM_INNER mult_exact_behav
`endif
`ifndef SM_INNER_PARAMS
`define SM_INNER_PARAMS
`endif

module sm_mult (
    input         a_sign,
    input  [7:0]  a_mag,
    input         b_sign,
    input  [7:0]  b_mag,
    output        p_sign,
    output [15:0] p_mag
);
    `SM_INNER `SM_INNER_PARAMS u_mag (.a(a_mag), .b(b_mag), .p(p_mag));

    assign p_sign = (a_sign ^ b_sign) & (|p_mag);
endmodule
