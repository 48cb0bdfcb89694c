// mult_trunc.v -- truncated unsigned 8x8 -> 16 multiplier (fixed-width style
// column truncation, e.g. Schulte & Swartzlander, "Truncated multiplication
// with correction constant", VLSI Signal Processing VI, 1993).
//
// Partial-product bits a_i b_j with i+j < K are dropped (K = 0..15, K = 0 is
// exact).  COMP = 1 adds the constant correction round(E[dropped]) for uniform
// random operands: every dropped bit is 1 with probability 1/4, so
// C = round(sum_{i+j<K} 2^(i+j) / 4), rounded half up (K = 4 -> C = 12).

module mult_trunc #(
    parameter K    = 4,
    parameter COMP = 0
) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    // expected value of the dropped bits, rounded half up
    function integer comp_const;
        input integer k;
        integer ii, jj, s;
        begin
            s = 0;
            for (ii = 0; ii < 8; ii = ii + 1)
                for (jj = 0; jj < 8; jj = jj + 1)
                    if (ii + jj < k)
                        s = s + (1 << (ii + jj));
            comp_const = (s + 2) / 4;
        end
    endfunction

    localparam integer CI = (COMP != 0) ? comp_const(K) : 0;
    localparam [15:0]  C  = CI[15:0];

    // column mask: bit c set if column c is kept (c >= K)
    localparam [15:0] KEEP = (K <= 0) ? 16'hFFFF : (K >= 16) ? 16'h0000 : ~((16'h1 << K) - 16'h1);

    wire [15:0] rows [0:7];   // rows[j] = ((a & {8{b[j]}}) << j) & KEEP
    genvar j;
    generate
        for (j = 0; j < 8; j = j + 1) begin : g_row
            assign rows[j] = (({8'b0, a & {8{b[j]}}}) << j) & KEEP;
        end
    endgenerate

    assign p = rows[0] + rows[1] + rows[2] + rows[3] + rows[4] + rows[5] + rows[6] + rows[7]
             + C;
endmodule
