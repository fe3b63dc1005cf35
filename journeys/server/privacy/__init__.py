"""The API's data-protection side: key rings between workers, sealed notes opened, exports."""
