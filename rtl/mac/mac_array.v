// mac_array.v -- ROWS x COLS output-stationary MAC array with bias preload, per-PE overflow flags, a
// double-buffered result drain and COLS requantization units.
//
// Dataflow (output-stationary). A tile is a ROWS x COLS block of outputs computed in K accumulation
// steps, one input beat per step; PE (r, c) holds the accumulator of output (r, c) for the whole tile.
//   dense mode (in_dw = 0), for pointwise / full / grouped convolutions as matrix products of im2col'ed
//     data: row r = output channel, column c = output pixel, step k = im2col index (input channel within
//     the group, kernel row, kernel column). The weight in_w[r] is broadcast along row r and the
//     activation in_x[c] down column c: PE (r, c) adds w[r][k] * x[k][c].
//   depthwise mode (in_dw = 1), for depthwise convolutions (independent per-channel dot products): row r =
//     channel, column c = output pixel, step k = kernel tap. in_w[r] is still broadcast along row r, but
//     each PE takes its own activation in_xpe[r][c] (per-PE activation mode): PE (r, c) adds
//     w[r][k] * x[r][k][c].
// The accumulators start from the bias of their row (in_bias[r]) on the first beat of a tile, then
// wrap or saturate after every addition (ACC_SAT); each PE keeps a sticky overflow flag (see mac_pe.v).
//
// Input stream (valid/ready), one beat per accumulation step:
//   in_valid, in_ready, in_first (first step of a tile), in_last (last step), in_dw (mode, per beat),
//   in_w [ROWS x 9], in_x [COLS x 9], in_xpe [ROWS*COLS x 9] (PE (r, c) at index r*COLS + c),
//   sampled on the first beat of a tile: in_bias [ROWS x ACC_BITS] and the requantization parameters of
//   each row in_m, in_mneg [ROWS x M_BITS], in_shift [ROWS x S_BITS], in_qlo, in_qhi [ROWS x 9]
//   (two's complement; see mac_requant.v). Field i of a bus is bits [i*W +: W].
//   Operand codes are 9 bits: sign-magnitude {sign, mag[7:0]} (OPERAND_SM=1) or two's complement int8
//   sign-extended to 9 bits (OPERAND_SM=0).
//   A first beat may also be the last (K = 1). A last beat is accepted only while the result buffer is
//   free: in_ready = !(in_last && out_valid); other beats are always accepted, so the next tile
//   accumulates while the previous one drains.
// Output stream (valid/ready), one beat per row of a finished tile, rows 0..ROWS-1 in order:
//   out_valid, out_ready, out_row [16 bits], out_last (row ROWS-1), out_acc [COLS x ACC_BITS] (two's complement),
//   out_ovf [COLS], out_q [COLS x 9]: the requantized output codes, in the operand code format (so they
//   can be fed back as activations).
//
// Latency and throughput: a beat accepted on clock edge n is accumulated at edge n (no input
// registers). The tile whose last beat is accepted at edge n presents row 0 from edge n on (out_valid
// rises after edge n) and row r after r further out_ready cycles. With in_valid and out_ready held high
// the array takes one beat per cycle (ROWS*COLS MACs per cycle) and finishes a tile of K steps every
// max(K, ROWS + 1) cycles: the drain of ROWS rows overlaps the next tile, whose last beat waits only
// when K <= ROWS. A stream of tiles thus takes (sum of K) + ROWS cycles plus the stalls of short tiles.
// rst is synchronous, active high.

module mac_array #(
    parameter ROWS        = 4,
    parameter COLS        = 4,
    parameter OPERAND_SM  = 1,
    parameter WEIGHT_PORT = 0,
    parameter P_BITS      = 16,
    parameter ACC_BITS    = 32,
    parameter ACC_SAT     = 0,
    parameter M_BITS      = 16,
    parameter S_BITS      = 6
) (
    input  wire                        clk,
    input  wire                        rst,
    // input stream
    input  wire                        in_valid,
    output wire                        in_ready,
    input  wire                        in_first,
    input  wire                        in_last,
    input  wire                        in_dw,
    input  wire [ROWS*9-1:0]           in_w,
    input  wire [COLS*9-1:0]           in_x,
    input  wire [ROWS*COLS*9-1:0]      in_xpe,
    input  wire [ROWS*ACC_BITS-1:0]    in_bias,
    input  wire [ROWS*M_BITS-1:0]      in_m,
    input  wire [ROWS*M_BITS-1:0]      in_mneg,
    input  wire [ROWS*S_BITS-1:0]      in_shift,
    input  wire [ROWS*9-1:0]           in_qlo,
    input  wire [ROWS*9-1:0]           in_qhi,
    // output stream
    output wire                        out_valid,
    input  wire                        out_ready,
    output wire [15:0]                 out_row,
    output wire                        out_last,
    output wire [COLS*ACC_BITS-1:0]    out_acc,
    output wire [COLS-1:0]             out_ovf,
    output wire [COLS*9-1:0]           out_q
);
    localparam RB = (ROWS > 1) ? $clog2(ROWS) : 1;

    reg           full;   // the result buffer holds a finished tile being drained
    reg  [RB-1:0] drow;   // row being presented
    wire          fire_in  = in_valid && in_ready;
    wire          fire_out = out_valid && out_ready;
    wire          done_out = fire_out && (drow == ROWS - 1);

    assign in_ready  = !(in_last && full);
    assign out_valid = full;
    assign out_row   = {{(16 - RB){1'b0}}, drow};
    assign out_last  = (drow == ROWS - 1);

    // requantization parameters: of the tile being accumulated (t_*), of the tile being drained (d_*)
    reg [ROWS*M_BITS-1:0] t_m, t_mneg, d_m, d_mneg;
    reg [ROWS*S_BITS-1:0] t_shift, d_shift;
    reg [ROWS*9-1:0]      t_qlo, t_qhi, d_qlo, d_qhi;

    always @(posedge clk) begin
        if (rst) begin
            full <= 1'b0;
            drow <= {RB{1'b0}};
            t_m <= 0; t_mneg <= 0; t_shift <= 0; t_qlo <= 0; t_qhi <= 0;
            d_m <= 0; d_mneg <= 0; d_shift <= 0; d_qlo <= 0; d_qhi <= 0;
        end else begin
            if (fire_in && in_first) begin
                t_m <= in_m; t_mneg <= in_mneg; t_shift <= in_shift; t_qlo <= in_qlo; t_qhi <= in_qhi;
            end
            if (fire_in && in_last) begin  // only accepted while !full
                full <= 1'b1;
                drow <= {RB{1'b0}};
                d_m     <= in_first ? in_m     : t_m;
                d_mneg  <= in_first ? in_mneg  : t_mneg;
                d_shift <= in_first ? in_shift : t_shift;
                d_qlo   <= in_first ? in_qlo   : t_qlo;
                d_qhi   <= in_first ? in_qhi   : t_qhi;
            end else if (done_out) begin
                full <= 1'b0;
                drow <= {RB{1'b0}};
            end else if (fire_out) begin
                drow <= drow + 1'b1;
            end
        end
    end

    // ---- the PE grid ---------------------------------------------------------------------------------
    wire [ROWS*COLS*ACC_BITS-1:0] res_all;
    wire [ROWS*COLS-1:0]          ovf_all;

    genvar r, c;
    generate
        for (r = 0; r < ROWS; r = r + 1) begin : g_row
            for (c = 0; c < COLS; c = c + 1) begin : g_col
                wire [8:0] x_pe = in_dw ? in_xpe[(r*COLS + c)*9 +: 9] : in_x[c*9 +: 9];
                wire [P_BITS:0]   prod;
                wire [ACC_BITS-1:0] acc;
                wire                ovf;
                mac_pe #(
                    .OPERAND_SM(OPERAND_SM), .WEIGHT_PORT(WEIGHT_PORT), .P_BITS(P_BITS),
                    .ACC_BITS(ACC_BITS), .ACC_SAT(ACC_SAT)
                ) u_pe (
                    .clk(clk), .rst(rst), .en(fire_in), .first(in_first), .last(in_last),
                    .w(in_w[r*9 +: 9]), .x(x_pe), .bias(in_bias[r*ACC_BITS +: ACC_BITS]),
                    .prod(prod), .acc(acc), .ovf(ovf),
                    .res(res_all[(r*COLS + c)*ACC_BITS +: ACC_BITS]), .res_ovf(ovf_all[r*COLS + c])
                );
            end
        end

        // ---- drain: row drow of the result buffer, requantized with that row's parameters ------------
        for (c = 0; c < COLS; c = c + 1) begin : g_out
            wire [ACC_BITS-1:0] a = res_all[(drow*COLS + c)*ACC_BITS +: ACC_BITS];
            wire [8:0]          q;
            mac_requant #(.ACC_BITS(ACC_BITS), .M_BITS(M_BITS), .S_BITS(S_BITS)) u_rq (
                .acc(a), .m_pos(d_m[drow*M_BITS +: M_BITS]), .m_neg(d_mneg[drow*M_BITS +: M_BITS]),
                .shift(d_shift[drow*S_BITS +: S_BITS]), .qlo(d_qlo[drow*9 +: 9]), .qhi(d_qhi[drow*9 +: 9]),
                .q(q)
            );
            wire [8:0] q_abs = q[8] ? (~q + 1'b1) : q;
            assign out_acc[c*ACC_BITS +: ACC_BITS] = a;
            assign out_ovf[c]                      = ovf_all[drow*COLS + c];
            assign out_q[c*9 +: 9]                 = (OPERAND_SM != 0) ? {q[8], q_abs[7:0]} : q;
        end
    endgenerate
endmodule
