.macro m a
 m.m.macro m a
 m \a.\a
.endm
.sa
.endection xm
a 
.s[ction xm
m 1
, 
d\ nero
 n ma073709551615
.sa
.endection xm
a 
.s[ction xm
m 1
,  \a
.endm
.sa
.endection xm
a 
.s[ction xm
m 1
, 1
