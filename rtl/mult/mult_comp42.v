// mult_comp42.v -- approximate 4:2-compressor multiplier, unsigned 8x8 -> 16.
//
// Reference: A. Momeni, J. Han, P. Montuschi, F. Lombardi, "Design and analysis
// of approximate compressors for multiplication", IEEE Trans. Computers 64(4),
// 2015 (design-2 style compressor without carry-in/out, true-input form).
//
// The 8 partial-product rows (row r = (a & {8{b_r}}) << r) form two groups of
// four (rows 0-3, rows 4-7).  In each group, every column c < K that holds bits
// of the group is reduced by one comp42_approx (x1..x4 = the group's rows in
// ascending order, a missing bit is 0): its sum stays in column c, its carry
// goes to column c+1.  All bits in columns >= K and all compressor outputs are
// then added exactly.  K = 0..15 (K = 0 is exact).

// Approximate 4:2 compressor, no carry-in/out: value sum + 2*carry
module comp42_approx (
    input  x1,
    input  x2,
    input  x3,
    input  x4,
    output sum,
    output carry
);
    assign sum   = (x1 ^ x2) | (x3 ^ x4);
    assign carry = (x1 & x2) | (x3 & x4);
endmodule

module mult_comp42 #(
    parameter K = 8
) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    localparam [15:0] KEEP = (K <= 0) ? 16'hFFFF : (K >= 16) ? 16'h0000 : ~((16'h1 << K) - 16'h1);

    wire [15:0] rows [0:7];  // rows[r] = (a & {8{b[r]}}) << r
    wire [15:0] kept [0:7];  // the same, columns < K cleared
    wire [15:0] cs   [0:1];  // compressor sums of group g, by column
    wire [16:0] cc   [0:1];  // compressor carries of group g, by column (weight 2^col)

    genvar r, g, c;
    generate
        for (r = 0; r < 8; r = r + 1) begin : g_row
            assign rows[r] = {8'b0, a & {8{b[r]}}} << r;
            assign kept[r] = rows[r] & KEEP;
        end

        for (g = 0; g < 2; g = g + 1) begin : g_grp
            assign cc[g][0] = 1'b0;
            for (c = 0; c < 16; c = c + 1) begin : g_col
                // group g spans columns 4g .. 4g+10
                if (c < K && c >= 4*g && c <= 4*g + 10) begin : g_cmp
                    comp42_approx u_cmp (
                        .x1   (rows[4*g + 0][c]),
                        .x2   (rows[4*g + 1][c]),
                        .x3   (rows[4*g + 2][c]),
                        .x4   (rows[4*g + 3][c]),
                        .sum  (cs[g][c]),
                        .carry(cc[g][c + 1])
                    );
                end else begin : g_none
                    assign cs[g][c]     = 1'b0;
                    assign cc[g][c + 1] = 1'b0;
                end
            end
        end
    endgenerate

    assign p = kept[0] + kept[1] + kept[2] + kept[3] + kept[4] + kept[5] + kept[6] + kept[7]
             + cs[0] + cs[1] + cc[0][15:0] + cc[1][15:0];
endmodule
