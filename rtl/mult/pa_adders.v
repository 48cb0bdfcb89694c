// pa_adders.v -- one-bit adder cells shared by the structural multipliers
// (mult_exact_array, mult_bam).
//   pa_full_adder: s = x ^ y ^ ci, co = majority(x, y, ci)
//   pa_half_adder: s = x ^ y,      co = x & y

module pa_full_adder (
    input  x,
    input  y,
    input  ci,
    output s,
    output co
);
    assign s  = x ^ y ^ ci;
    assign co = (x & y) | (x & ci) | (y & ci);
endmodule

module pa_half_adder (
    input  x,
    input  y,
    output s,
    output co
);
    assign s  = x ^ y;
    assign co = x & y;
endmodule
