"""The stream worker: topics, batch processors over aiokafka and RocksDB, the faust app."""
