// lod8.v -- leading-one detector, 8 bits (shared by mitchell_core and mult_drum).
//   k = position of the most significant 1 of x (floor(log2 x)), 0..7; k = 0 for x = 0 as for
//   x = 1, so callers that care test x != 0 themselves.

module lod8 (
    input      [7:0] x,
    output reg [2:0] k
);
    integer i;
    always @* begin
        k = 3'd0;
        for (i = 0; i < 8; i = i + 1)
            if (x[i]) k = i[2:0];
    end
endmodule
