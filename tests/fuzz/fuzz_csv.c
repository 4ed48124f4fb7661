/* fuzz_csv.c - the CSV table reader (lensnet_csv_read_memory) and what the tools do with a table:
 * `lens train` and `lens plot` find the label column (lensnet_csv_label_column), `lens plot`
 * and `lens eval` look columns up by name (lensnet_csv_column) and read cells as numbers
 * (lensnet_csv_number), for labels.csv, scores and history.csv files; `lens train` and `lens adapt`
 * match labels to images (lensnet_csv_object_rows, lensnet_csv_class_labels).
 *
 * A table that reads must be rectangular with every cell a NUL-terminated string inside the
 * table, and cells outside it must be refused. A refusal must come with a message.
 */
#include "fuzz.h"
#define LENSNET_IMPLEMENTATION
#include "lensnet.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lensnet_csv table;
  lensnet_error err;
  size_t r, c, column, cells = 0;
  double v;
  if (lensnet_csv_read_memory(data, size, &table, &err) != LENSNET_OK) {
    if (!err.message[0]) abort();
    return 0;
  }
  if (table.rows < 1 || table.cols < 1 || !table.header) abort();
  for (r = 0; r < table.rows; r++)
    for (c = 0; c < table.cols; c++) {
      const char *cell = lensnet_csv_cell(&table, r, c);
      if (!cell) abort();
      cells += strlen(cell);
      /* the first few hundred cells as numbers: enough to cover the parse, bounded in time */
      if (r * table.cols + c < 256 && lensnet_csv_number(&table, r, c, &v, &err) != LENSNET_OK && !err.message[0]) abort();
    }
  (void)cells;
  if (lensnet_csv_cell(&table, table.rows, 0) || lensnet_csv_cell(&table, 0, table.cols)) abort();
  if (lensnet_csv_number(&table, table.rows, 0, &v, &err) != LENSNET_ERR_ARG) abort();
  if (lensnet_csv_label_column(table.header, &column, &err) == LENSNET_OK && column >= table.cols) abort();
  if (lensnet_csv_column(table.header, "score", &column, &err) == LENSNET_OK && column >= table.cols) abort();
  if (lensnet_csv_column(table.header, "index", &column, &err) == LENSNET_OK && column >= table.cols) abort();
  {
    /* the labels of `lens train` and `lens adapt`: for as many images as the table has rows (the
     * count that can succeed) and one more (which cannot), every label a class below 3, every
     * image's row a data row, each once */
    size_t n = table.rows - 1, k, *row;
    float *labels;
    if (n && n < 4096 && (labels = (float *)malloc(n * sizeof(float))) != NULL) {
      if (lensnet_csv_class_labels(&table, n, 3, labels, &err) == LENSNET_OK) {
        for (k = 0; k < n; k++)
          if (!(labels[k] >= 0 && labels[k] < 3)) abort();
      } else if (!err.message[0]) abort();
      free(labels);
      if ((row = (size_t *)malloc((n + 1) * sizeof(size_t))) != NULL) {
        if (lensnet_csv_object_rows(&table, 1, n + 1, row, &err) == LENSNET_OK) abort();
        if (lensnet_csv_object_rows(&table, 1, n, row, &err) == LENSNET_OK) {
          char *seen = (char *)calloc(table.rows, 1);
          for (k = 0; seen && k < n; k++) {
            if (row[k] < 1 || row[k] >= table.rows || seen[row[k]]) abort();
            seen[row[k]] = 1;
          }
          free(seen);
        }
        free(row);
      }
    }
  }
  lensnet_csv_free(&table);
  return 0;
}
