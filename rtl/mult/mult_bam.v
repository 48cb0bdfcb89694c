// mult_bam.v -- broken-array multiplier (BAM), unsigned 8x8 -> 16.
//
// Reference: H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas, "Bio-inspired
// imprecise computational blocks for efficient VLSI implementation of
// soft-computing applications", IEEE TCAS-I 57(4), 2010.
//
// A carry-save array multiplier: cell (j, c) adds pp = a[c-j] & b[j] to the
// sum of cell (j-1, c) and the carry of cell (j-1, c-1); a ripple-carry
// vector-merging row adds the last row's sums and carries (columns 8..15).
// Cells are generated only where kept:
//   HBL: rows j < HBL (the rows of b_0 .. b_{HBL-1}) are omitted (0..8);
//   VBL: cells in columns c < VBL are omitted (0..15).
// The product is therefore exactly sum a_i b_j 2^(i+j) over j >= HBL and
// i+j >= VBL.  A cell with three live inputs is a full adder, with two a half
// adder, with one a wire; the input counts are computed by constant functions.
// Needs pa_adders.v.

// One array/merge cell: adds the live inputs among x, y, z (HX/HY/HZ say which
// are live; dead inputs must be tied to 0).
module bam_cell #(
    parameter HX = 1,
    parameter HY = 1,
    parameter HZ = 1
) (
    input  x,
    input  y,
    input  z,
    output s,
    output co
);
    generate
        if (HX + HY + HZ == 3) begin : g_fa
            pa_full_adder u_fa (.x(x), .y(y), .ci(z), .s(s), .co(co));
        end else if (HX + HY + HZ == 2) begin : g_ha
            if (HX == 0) begin : g_yz
                pa_half_adder u_ha (.x(y), .y(z), .s(s), .co(co));
            end else if (HY == 0) begin : g_xz
                pa_half_adder u_ha (.x(x), .y(z), .s(s), .co(co));
            end else begin : g_xy
                pa_half_adder u_ha (.x(x), .y(y), .s(s), .co(co));
            end
        end else begin : g_wire
            assign s  = x | y | z;   // at most one live input
            assign co = 1'b0;
        end
    endgenerate
endmodule

module mult_bam #(
    parameter HBL = 0,
    parameter VBL = 0
) (
    input  [7:0]  a,
    input  [7:0]  b,
    output [15:0] p
);
    // is cell (row j, column c) kept?
    function cell_ok;
        input integer j;
        input integer c;
        begin
            cell_ok = (j >= HBL) && (j < 8) && (c >= VBL) && (c >= j) && (c <= j + 7);
        end
    endfunction

    // bit c set if cell (j, c) has a carry output (two or more live inputs)
    function [15:0] cout_row;
        input integer j;
        integer r, c;
        reg [15:0] prev, cur;
        begin
            prev = 16'b0;
            cur  = 16'b0;
            for (r = 0; r <= j; r = r + 1) begin
                for (c = 0; c < 16; c = c + 1)
                    cur[c] = cell_ok(r, c) && ((r > 0 && cell_ok(r - 1, c)) || (c > 0 && prev[c > 0 ? c - 1 : 0]));
                prev = cur;
            end
            cout_row = cur;
        end
    endfunction

    // bit c set if merge cell c (8..15) has a carry output
    function [15:0] cout_merge;
        input integer dummy;
        integer c, n;
        reg [15:0] last, m;
        begin
            last = cout_row(7);
            m    = 16'b0;
            for (c = 8; c < 16; c = c + 1) begin
                n = (cell_ok(7, c) ? 1 : 0) + (last[c - 1] ? 1 : 0) + ((c > 8 && m[c > 8 ? c - 1 : 0]) ? 1 : 0);
                m[c] = (n >= 2);
            end
            cout_merge = m;
        end
    endfunction

    localparam [15:0] LASTC  = cout_row(7);
    localparam [15:0] MERGEC = cout_merge(0);

    // s_w[j][c] / c_w[j][c]: sum / carry out of cell (j, c); the carry has weight 2^(c+1)
    wire [15:0] s_w [0:7];
    wire [15:0] c_w [0:7];
    // merge row: sum / carry out of merge cell c
    wire [15:0] ms_w;
    wire [15:0] mc_w;

    genvar j, c;
    generate
        for (j = 0; j < 8; j = j + 1) begin : g_row
            for (c = 0; c < 16; c = c + 1) begin : g_col
                if (cell_ok(j, c)) begin : g_cell
                    localparam HS = (j > 0) && cell_ok(j - 1, c);
                    localparam [15:0] PC = (j > 0) ? cout_row(j - 1) : 16'b0;
                    localparam HC = (c > 0) && PC[c > 0 ? c - 1 : 0];
                    wire sin, cin;
                    if (HS) begin : g_s
                        assign sin = s_w[j-1][c];
                    end else begin : g_ns
                        assign sin = 1'b0;
                    end
                    if (HC) begin : g_c
                        assign cin = c_w[j-1][c-1];
                    end else begin : g_nc
                        assign cin = 1'b0;
                    end
                    bam_cell #(.HX(1), .HY(HS ? 1 : 0), .HZ(HC ? 1 : 0)) u_cell (
                        .x (a[c - j] & b[j]),
                        .y (sin),
                        .z (cin),
                        .s (s_w[j][c]),
                        .co(c_w[j][c])
                    );
                end else begin : g_none
                    assign s_w[j][c] = 1'b0;
                    assign c_w[j][c] = 1'b0;
                end
            end
        end

        // low product bits: the diagonal cells
        for (c = 0; c < 8; c = c + 1) begin : g_plo
            assign p[c] = s_w[c][c];
            assign ms_w[c] = 1'b0;
            assign mc_w[c] = 1'b0;
        end

        // vector-merging ripple-carry row, columns 8..15
        for (c = 8; c < 16; c = c + 1) begin : g_merge
            localparam HS = cell_ok(7, c);
            localparam HC = LASTC[c - 1];
            localparam HR = (c > 8) && MERGEC[c > 8 ? c - 1 : 0];
            wire xs, xc, xr;
            if (HS) begin : g_s
                assign xs = s_w[7][c];
            end else begin : g_ns
                assign xs = 1'b0;
            end
            if (HC) begin : g_c
                assign xc = c_w[7][c-1];
            end else begin : g_nc
                assign xc = 1'b0;
            end
            if (HR) begin : g_r
                assign xr = mc_w[c - 1];
            end else begin : g_nr
                assign xr = 1'b0;
            end
            bam_cell #(.HX(HS ? 1 : 0), .HY(HC ? 1 : 0), .HZ(HR ? 1 : 0)) u_cell (
                .x (xs), .y (xc), .z (xr), .s (ms_w[c]), .co(mc_w[c])
            );
            assign p[c] = ms_w[c];
        end
    endgenerate
endmodule
