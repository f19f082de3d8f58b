.macro m a
 m \a
.endm
.section x
m 1
