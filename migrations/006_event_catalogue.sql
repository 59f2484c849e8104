-- Reserved: filled in by the work in progress on this part of the schema.
SELECT 1;
