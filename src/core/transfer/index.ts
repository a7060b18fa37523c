// Fine-tuning transfer: the linear-connectivity report and the diff_transfer run.
export { connectivityReport, FAR_APART, MODERATELY_APART, CONFLICT_COSINE, OVERLAP_COSINE, type ConnectivityReport, type ConnectivityLayer, type ConnectivityCell, type TransferVerdict } from './connectivity';
export { prepareTransfer, runTransfer, transferRecipePath, transferRecipeText, type TransferRequest, type TransferRun } from './transfer';
