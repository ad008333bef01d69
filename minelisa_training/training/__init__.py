"""Fine-tuning MineLISA: losses, the training recipe (config), data collation, the
DeepSpeed ZeRO-2 trainer, atomic checkpoints and the export of serving bundles."""
