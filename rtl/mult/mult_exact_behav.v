// mult_exact_behav.v -- exact unsigned 8x8 -> 16 multiplier, behavioural
// (the synthesis tool chooses the architecture). Reference design.

module mult_exact_behav (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    assign p = a * b;
endmodule
